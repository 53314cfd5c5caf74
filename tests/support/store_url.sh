# store_url.sh: the store URLs of the shell tests, for the backend under
# test. Source it; then `store_url DIR NAME` prints a new store's URL:
# sqlite:DIR/NAME.db, or with TD_TEST_STORE=postgres a schema of its own
# on the test server (TD_TEST_PG_URL, or the url= line of the state file
# TD_TEST_PG_STATE that scripts/start-postgres.sh wrote). pg_server_url
# prints that server's URL, psql_store URL SQL runs SQL in a store's schema.
# store_sql URL SQL runs SQL on either backend's store (to stage what no
# command writes: a store from an older version, damage); store_rows URL
# prints every row of a PostgreSQL store's tables (its bytes, as the search
# for what must never stand in the clear sees them).

td_test_store=${TD_TEST_STORE:-sqlite}
store_url_counter=0

pg_server_url() {
  local url=${TD_TEST_PG_URL:-}
  [ -n "$url" ] || url=$(sed -n 's/^url=//p' "${TD_TEST_PG_STATE:-/nonexistent}" 2>/dev/null)
  if [ -z "$url" ]; then
    echo "no PostgreSQL server for the tests: set TD_TEST_PG_URL or TD_TEST_PG_STATE" >&2
    return 1
  fi
  printf '%s\n' "$url"
}

# pg_schema_url NAME: a new schema on the test server, named after NAME,
# this shell's pid, a counter and a random number (callers mostly run it in
# $(...), a subshell, where the counter does not carry over: without the
# random part two stores of one name in one test would share a schema).
pg_schema_url() {
  local server
  server=$(pg_server_url) || return 1
  store_url_counter=$((store_url_counter + 1))
  printf '%s?options=-csearch_path%%3Ds%s_%s_%s_%s\n' "$server" "$$" "$store_url_counter" \
    "$SRANDOM" "$(printf '%s' "$1" | tr -c 'a-z0-9' '_')"
}

store_url() {
  if [ "$td_test_store" = postgres ]; then
    pg_schema_url "$2"
  else
    printf 'sqlite:%s/%s.db\n' "$1" "$2"
  fi
}

psql_store() {
  psql -qX -v ON_ERROR_STOP=1 "$1" -c "$2"
}

store_sql() {
  case $1 in
    sqlite:*) sqlite3 "${1#sqlite:}" "$2" ;;
    *) psql -qAtX -v ON_ERROR_STOP=1 "$1" -c "$2" ;;
  esac
}

store_rows() {
  local tables t
  tables=$(psql -qAtX -v ON_ERROR_STOP=1 "$1" \
    -c "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()") ||
    return 1
  [ -n "$tables" ] || { echo "store_rows: no tables in the store's schema" >&2; return 1; }
  for t in $tables; do
    psql -qAtX -v ON_ERROR_STOP=1 "$1" -c "COPY \"$t\" TO STDOUT" || return 1
  done
}
