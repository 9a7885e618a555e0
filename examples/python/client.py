#!/usr/bin/env python3
"""Submit a job to `tokenswift serve` and stream its text, with the same proto as the C++ clients.

    pip install grpcio grpcio-tools
    python3 examples/python/client.py --server 127.0.0.1:50051 --auth-token-file token.txt \
        --prompt "Write a story about a dragon." -n 200

The stubs are generated from proto/tokenswift.proto into a temporary directory at start, so the
example always matches the server it ships with. Reconnects with `from` = tokens received when
the stream breaks (a server restart): a durable job continues where it was.
"""
import argparse
import importlib
import pathlib
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_stubs():
    out = tempfile.mkdtemp(prefix="tokenswift-proto-")
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(ROOT / "proto" / "tokenswift.proto")])
    if rc != 0:
        sys.exit("client.py: protoc failed on proto/tokenswift.proto")
    sys.path.insert(0, out)
    return (importlib.import_module("proto.tokenswift_pb2"),
            importlib.import_module("proto.tokenswift_pb2_grpc"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="127.0.0.1:50051")
    ap.add_argument("--auth-token-file", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("-n", "--max-new-tokens", type=int, default=200)
    ap.add_argument("--mode", default="")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--request-id", default="")
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--ids-out", help="also write the token ids here, one per line")
    args = ap.parse_args()

    pb, pb_grpc = load_stubs()
    token = pathlib.Path(args.auth_token_file).read_text().strip()
    auth = [("authorization", f"Bearer {token}")]
    stub = pb_grpc.GenerationStub(grpc.insecure_channel(args.server))
    job = stub.Submit(pb.SubmitRequest(
        request_id=args.request_id, text=args.prompt, max_new_tokens=args.max_new_tokens,
        mode=args.mode, ignore_eos=args.ignore_eos, sampling=pb.Sampling(temperature=args.temperature, seed=args.seed)),
        metadata=auth, timeout=30).job_id
    print(f"job {job}", file=sys.stderr)

    ids = []
    while True:
        try:
            for msg in stub.Stream(pb.StreamRequest(job_id=job, **{"from": len(ids)}),
                                   metadata=auth):
                ids.extend(msg.token_ids)
                sys.stdout.buffer.write(msg.text)
                sys.stdout.flush()
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            print(f"\n[stream broke at {len(ids)} tokens: reconnecting]", file=sys.stderr)
            time.sleep(1)
    state = stub.Get(pb.GetRequest(job_id=job), metadata=auth, timeout=30)
    print(f"\n{pb.JobState.Name(state.state)}: {state.generated_tokens} tokens, "
          f"{state.stats.tokens_per_second:.1f} tok/s", file=sys.stderr)
    if args.ids_out:
        pathlib.Path(args.ids_out).write_text("".join(f"{i}\n" for i in ids))
    return 0 if state.state == pb.JOB_STATE_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
