# The peer for `npm run bench -- all-to-all`: PyTorch's gloo backend on `world` CPU processes on loopback, a uniform
# all_to_all_single of `bytes` per pair, timed as moemu's is: inputs prepared before the clock starts, `warmup`
# untimed exchanges, a barrier, then `count` back to back; the figure is the slowest rank's time per exchange.
# Usage: python3 gloo_all_to_all.py WORLD BYTES COUNT WARMUP  ->  one JSON line {"version", "ms"} on stdout.
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, world, nbytes, count, warmup, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    generator = torch.Generator().manual_seed(rank)
    send = torch.randint(0, 256, (world * nbytes,), dtype=torch.uint8, generator=generator)
    recv = torch.empty_like(send)
    for _ in range(warmup):
        dist.all_to_all_single(recv, send)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(count):
        dist.all_to_all_single(recv, send)
    slowest = torch.tensor([(time.perf_counter() - start) * 1000 / count], dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    if rank == 0:
        out.put(slowest.item())
    dist.destroy_process_group()


def main():
    world, nbytes, count, warmup = (int(a) for a in sys.argv[1:5])
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"   # bind loopback only
    context = mp.get_context("fork")
    out = context.SimpleQueue()
    port = free_port()
    procs = [context.Process(target=rank_main, args=(r, world, nbytes, count, warmup, port, out))
             for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        sys.exit(f"a gloo rank failed (exit codes {[p.exitcode for p in procs]})")
    print(json.dumps({"version": torch.__version__, "ms": out.get()}))


if __name__ == "__main__":
    main()
