#!/usr/bin/env bash
# `tokenswift serve` end to end on loopback (issue 12's done-when): submit -> stream -> done with
# the tokens of `generate --output`; duplicate submits; each invalid field; a wrong token; a
# full queue; cancel mid-run; kill -9 mid-run and restart -> the uninterrupted run's tokens;
# SIGTERM drain and restart -> the same; stream reconnect with --from; the metrics endpoint.
# Usage: serve_test.sh PATH_TO_TOKENSWIFT
set -uo pipefail
ts="$1"
here="$(cd "$(dirname "$0")" && pwd)"
cache="${TS_CACHE_DIR:-$HOME/.cache/tokenswift}"
model="${TS_MODEL_PATH:-$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
heads="$here/../../models/heads/smollm2-135m-instruct-heads.safetensors"
tmp=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  [ -n "${KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

echo "s3cret-$$" >"$tmp/token"
echo "wrong" >"$tmp/badtoken"
state="$tmp/state"

# start_server: runs serve in the background, waits for its "listening" line, sets $pid, $addr,
# $metrics_port.
launcher=()        # mpirun for the tensor-parallel server
start_server() {  # [EXTRA SERVE FLAGS]
  : >"$tmp/server.log"
  "${launcher[@]}" "$ts" --log-level info serve --model "$model" --heads "$heads" --listen 127.0.0.1:0 \
    --state-dir "$state" --auth-token-file "$tmp/token" --threads 1 --max-queue 3 \
    --metrics-listen 127.0.0.1:0 "$@" 2>>"$tmp/server.log" &
  pid=$!
  for _ in $(seq 1 300); do
    if grep -q "listening on" "$tmp/server.log"; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  local line
  line=$(grep "listening on" "$tmp/server.log" | tail -1)
  addr=$(echo "$line" | sed -E 's/.*listening on ([0-9.]+:[0-9]+).*/\1/')
  metrics_port=$(echo "$line" | sed -E 's/.*metrics on port ([0-9]+).*/\1/')
  server_pid=$(echo "$line" | sed -E 's/.*, pid ([0-9]+).*/\1/')  # rank 0 under mpirun
  if [ -z "$line" ]; then
    echo "server did not start:"; cat "$tmp/server.log"; exit 1
  fi
}

c() { "$ts" "$@" --server "$addr" --auth-token-file "$tmp/token"; }
generated() { c status --job "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["generated_tokens"])'; }
job_state() { c status --job "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
wait_tokens() {  # JOB N: until the job has N tokens (60 s at most)
  for _ in $(seq 1 600); do
    [ "$(generated "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
same_ids() {  # WHAT A B
  if cmp -s "$2" "$3"; then ok; else
    bad "$1: $(wc -l <"$2") vs $(wc -l <"$3") ids, first difference at line $(cmp "$2" "$3" | sed -E 's/.*line ([0-9]+).*/\1/')"
  fi
}
expect_fail() {  # CODE NEEDLE -- CLIENT ARGS: exit CODE and one stderr line holding NEEDLE
  local code="$1" needle="$2"
  shift 3
  "$ts" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$code" ] || [ "$(grep -c '' "$tmp/err")" -ne 1 ] || ! grep -qF -- "$needle" "$tmp/err"; then
    bad "'$*': exit $rc (expected $code), stderr: $(head -c 300 "$tmp/err")"
  else
    ok
  fi
}

prompt="Write a story about a lighthouse keeper."
sampled=(--temperature 1 --min-p 0.1 --penalty 1.2 --seed 7)

# References: what generate writes for the same jobs.
"$ts" generate --model "$model" -p "$prompt" -n 80 "${sampled[@]}" --ignore-eos -q -t 1 \
  --output "$tmp/ref_ar.ids" 2>/dev/null
"$ts" generate --model "$model" --heads "$heads" --mode tokenswift -p "$prompt" -n 80 \
  --temperature 0 --ignore-eos -q -t 1 --output "$tmp/ref_ts.ids" 2>/dev/null
"$ts" generate --model "$model" -p "$prompt" -n 400 --temperature 1 --seed 5 --ignore-eos -q -t 1 \
  --output "$tmp/ref_long.ids" 2>/dev/null

start_server

# 1. submit -> stream -> done, the tokens of generate.
j1=$(c submit -p "$prompt" -n 80 --mode ar "${sampled[@]}" --ignore-eos --request-id r1)
c stream --job "$j1" --output "$tmp/j1.ids" && ok || bad "stream of $j1 failed"
same_ids "ar sampled via serve vs generate" "$tmp/ref_ar.ids" "$tmp/j1.ids"
j2=$(c submit -p "$prompt" -n 80 --mode tokenswift --temperature 0 --ignore-eos)
c stream --job "$j2" --output "$tmp/j2.ids" && ok || bad "stream of $j2 failed"
same_ids "tokenswift greedy via serve vs generate" "$tmp/ref_ts.ids" "$tmp/j2.ids"
[ "$(job_state "$j2")" = "JOB_STATE_SUCCEEDED" ] && ok || bad "$j2 state $(job_state "$j2")"

# The Python example (grpcio, same proto): the same job, the same tokens.
python3 "$here/../../examples/python/client.py" --server "$addr" --auth-token-file "$tmp/token" \
  --prompt "$prompt" -n 80 --mode ar --temperature 1 --seed 7 --ignore-eos \
  --ids-out "$tmp/py.ids" >"$tmp/py.txt" 2>"$tmp/py.err" && ok || bad "python example: $(tail -3 "$tmp/py.err")"
same_ids "python example vs generate" "$tmp/ref_ar.ids" "$tmp/py.ids"
[ -s "$tmp/py.txt" ] && ok || bad "python example printed no text"

# 2. Duplicate submits: same id + payload -> same job; another payload -> ALREADY_EXISTS.
again=$(c submit -p "$prompt" -n 80 --mode ar "${sampled[@]}" --ignore-eos --request-id r1)
[ "$again" = "$j1" ] && ok || bad "resubmit gave '$again', expected $j1"
expect_fail 2 "ALREADY_EXISTS" -- submit --server "$addr" --auth-token-file "$tmp/token" \
  -p "another prompt" -n 80 --request-id r1

# 3. Each invalid field -> INVALID_ARGUMENT naming it (exit 2).
auth=(--server "$addr" --auth-token-file "$tmp/token")
expect_fail 2 "max_new_tokens" -- submit "${auth[@]}" -p hi -n 0
expect_fail 2 "max_new_tokens" -- submit "${auth[@]}" -p hi -n 100000000
expect_fail 2 "mode" -- submit "${auth[@]}" -p hi -n 4 --mode beam
expect_fail 2 "sampling.top_p" -- submit "${auth[@]}" -p hi -n 4 --top-p 1.5
expect_fail 2 "sampling.temperature" -- submit "${auth[@]}" -p hi -n 4 --temperature -1
expect_fail 2 "sampling.penalty" -- submit "${auth[@]}" -p hi -n 4 --penalty 0
expect_fail 2 "request_id" -- submit "${auth[@]}" -p hi -n 4 --request-id "$(printf 'x%.0s' $(seq 1 200))"
: >"$tmp/empty.txt"
expect_fail 2 "text" -- submit "${auth[@]}" --prompt-file "$tmp/empty.txt" -n 4
expect_fail 2 "job_id" -- status "${auth[@]}" --job nope
expect_fail 2 "from" -- stream "${auth[@]}" --job "$j1" --from 999

# 4. A wrong token -> UNAUTHENTICATED on every call.
for cmd in "submit -p hi -n 4" "status --job $j1" "stream --job $j1" "cancel --job $j1"; do
  # shellcheck disable=SC2086
  expect_fail 2 "UNAUTHENTICATED" -- $cmd --server "$addr" --auth-token-file "$tmp/badtoken"
done

# 5. Stream reconnect: --from K gives the rest.
c stream --job "$j1" --from 30 --output "$tmp/j1_tail.ids" && ok || bad "stream --from failed"
tail -n +31 "$tmp/ref_ar.ids" >"$tmp/ref_tail.ids"
same_ids "stream --from 30" "$tmp/ref_tail.ids" "$tmp/j1_tail.ids"

# 6. Cancel mid-run, and a full queue while a job runs.
jc=$(c submit -p "$prompt" -n 8000 --mode ar --ignore-eos)
wait_tokens "$jc" 10 && ok || bad "cancel job never ran"
q1=$(c submit -p "$prompt" -n 10 --mode ar)
q2=$(c submit -p "$prompt" -n 10 --mode ar)
q3=$(c submit -p "$prompt" -n 10 --mode ar)
expect_fail 1 "RESOURCE_EXHAUSTED" -- submit "${auth[@]}" -p "$prompt" -n 10
for q in "$q1" "$q2" "$q3"; do c cancel --job "$q" >/dev/null; done
[ "$(job_state "$q2")" = "JOB_STATE_CANCELLED" ] && ok || bad "queued cancel: $(job_state "$q2")"
c cancel --job "$jc" >/dev/null
for _ in $(seq 1 100); do [ "$(job_state "$jc")" = "JOB_STATE_CANCELLED" ] && break; sleep 0.1; done
[ "$(job_state "$jc")" = "JOB_STATE_CANCELLED" ] && ok || bad "running cancel: $(job_state "$jc")"
n=$(generated "$jc")
[ "$n" -lt 8000 ] && ok || bad "cancelled job has $n tokens"
expect_fail 1 "cancelled" -- stream "${auth[@]}" --job "$jc" --output "$tmp/jc.ids"

# 7. kill -9 mid-run, restart: the job ends with the uninterrupted run's tokens.
jk=$(c submit -p "$prompt" -n 400 --mode ar --temperature 1 --seed 5 --ignore-eos)
wait_tokens "$jk" 300 && ok || bad "kill job never reached 300 tokens"  # past a stored chunk
kill -9 "$pid"
wait "$pid" 2>/dev/null
start_server
c stream --job "$jk" --output "$tmp/jk.ids" && ok || bad "stream after restart failed"
same_ids "kill -9 + restart vs uninterrupted" "$tmp/ref_long.ids" "$tmp/jk.ids"
grep -qE "job $jk: ar \(.*, [1-9][0-9]* of 400 new tokens done\)" "$tmp/server.log" && ok ||
  bad "the restarted job did not continue from stored tokens: $(grep "job $jk" "$tmp/server.log")"
resumes=$(c status --job "$jk" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["resumes"])')
[ "$resumes" -ge 1 ] && ok || bad "resumes = $resumes after a restart"
same_ids "finished job survives restart" "$tmp/ref_ar.ids" <(c stream --job "$j1")

# 8. SIGTERM drains (exit 0) and checkpoints; the restarted server finishes the job identically.
jd=$(c submit -p "$prompt" -n 400 --mode ar --temperature 1 --seed 5 --ignore-eos)
wait_tokens "$jd" 100 && ok || bad "drain job never reached 100 tokens"
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] && ok || bad "serve exited $rc after SIGTERM"
grep -q "checkpointed" "$tmp/server.log" && ok || bad "no checkpoint line in the server log"
start_server
grep -qE "job $jd: ar \(.*, [1-9][0-9]* of 400 new tokens done\)" "$tmp/server.log" && ok ||
  bad "the drained job did not continue from its checkpoint: $(grep "job $jd" "$tmp/server.log")"
c stream --job "$jd" --output "$tmp/jd.ids" && ok || bad "stream after drain failed"
same_ids "SIGTERM drain + restart vs uninterrupted" "$tmp/ref_long.ids" "$tmp/jd.ids"

# status without --job lists every job (List), one line each.
c status >"$tmp/list.txt" && ok || bad "status (List) failed"
grep -q "^$j1 JOB_STATE_SUCCEEDED 80/80" "$tmp/list.txt" && ok || bad "List lacks $j1: $(head -3 "$tmp/list.txt")"

# The standard health service answers SERVING, and reflection lists the service.
python3 - "$addr" <<'PY' && ok || bad "health / reflection"
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
ch = grpc.insecure_channel(sys.argv[1])
r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
assert r.status == health_pb2.HealthCheckResponse.SERVING, r
req = reflection_pb2.ServerReflectionRequest(list_services="")
names = [s.name for resp in reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
    iter([req]), timeout=10) for s in resp.list_services_response.service]
assert "tokenswift.v1.Generation" in names, names
PY

# 9. Metrics.
python3 - "$metrics_port" <<'PY' && ok || bad "metrics endpoint"
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
assert 'tokenswift_jobs{state="succeeded"}' in text, text
assert "tokenswift_generated_tokens_total" in text, text
PY

kill -TERM "$pid"
wait "$pid"

# 10. mTLS: a server with a certificate that requires client certificates from its CA.
(
  cd "$tmp" || exit 1
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out server.pem
  openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout client.key -out client.csr
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem
) >/dev/null 2>&1 || bad "openssl could not make test certificates"
start_server --tls-cert "$tmp/server.pem" --tls-key "$tmp/server.key" --tls-client-ca "$tmp/ca.pem"
grep -q "(TLS)" "$tmp/server.log" && ok || bad "the TLS server does not say TLS"
tls=(--tls-ca "$tmp/ca.pem" --tls-cert "$tmp/client.pem" --tls-key "$tmp/client.key")
got=$(c status --job "$j1" "${tls[@]}" 2>&1) && ok || bad "mTLS status: $got"
expect_fail 1 "UNAVAILABLE" -- status --server "$addr" --auth-token-file "$tmp/token" --job "$j1" \
  --tls-ca "$tmp/ca.pem" --timeout 5  # no client certificate
expect_fail 1 "UNAVAILABLE" -- status --server "$addr" --auth-token-file "$tmp/token" --job "$j1" \
  --timeout 5  # plaintext to a TLS port
kill -TERM "$pid"
wait "$pid"

# 11. Tensor parallel: rank 0 serves, rank 1 follows; the tokens of one process (TP-invariant),
# a cancel keeps the group in step, idle beats keep rank 1 within its deadline, SIGTERM ends all.
# shellcheck source=../parallel/mpirun_env.sh
source "$here/../parallel/mpirun_env.sh"
launcher=("${MPIRUN[@]}" -np 2)
state="$tmp/state_tp"
start_server --tp 2 --comm-timeout 20
jt=$(c submit -p "$prompt" -n 80 --mode tokenswift --temperature 0 --ignore-eos)
c stream --job "$jt" --output "$tmp/tp_ts.ids" && ok || bad "TP2 stream failed"
same_ids "TP2 server tokenswift vs generate" "$tmp/ref_ts.ids" "$tmp/tp_ts.ids"
jc=$(c submit -p "$prompt" -n 8000 --mode ar --ignore-eos)
wait_tokens "$jc" 10 && ok || bad "TP2 cancel job never ran"
c cancel --job "$jc" >/dev/null
for _ in $(seq 1 100); do [ "$(job_state "$jc")" = "JOB_STATE_CANCELLED" ] && break; sleep 0.1; done
[ "$(job_state "$jc")" = "JOB_STATE_CANCELLED" ] && ok || bad "TP2 cancel: $(job_state "$jc")"
sleep 6  # longer than an idle beat
ja=$(c submit -p "$prompt" -n 80 --mode ar "${sampled[@]}" --ignore-eos)
c stream --job "$ja" --output "$tmp/tp_ar.ids" && ok || bad "TP2 stream after cancel failed"
same_ids "TP2 server ar sampled after a cancel vs generate" "$tmp/ref_ar.ids" "$tmp/tp_ar.ids"
kill -TERM "$server_pid"  # rank 0 (mpirun itself exits 1 when it is signalled)
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] && ok || bad "mpirun serve --tp 2 exited $rc after SIGTERM: $(tail -3 "$tmp/server.log")"
pid=""
echo "serve: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
