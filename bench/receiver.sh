# Sourced by the bench scripts: starts the receiver built in $WORK (a
# separate process, stopped when the script exits), waits for it to print
# its URL, and sets URL and RECV (its pid).
"$WORK/receiver" >"$WORK/receiver.url" &
RECV=$!
trap 'kill $RECV 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$WORK/receiver.url" ] && break; sleep 0.1; done
URL=$(head -1 "$WORK/receiver.url")

# segment_sink prints the sink block of a bench pipeline: the receiver,
# no rate limit, 4 requests at once.
segment_sink() {
  printf 'sink:\n  segment:\n    endpoint: %s\n    write_key: bench\n    request: {rate_limit: "0", concurrency: 4}\n' "$URL"
}
