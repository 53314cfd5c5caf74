# store_url.sh: the store URLs of the shell tests, for the backend under
# test. Source it; then `store_url DIR NAME` prints a new store's URL:
# sqlite:DIR/NAME.db, or with TD_TEST_STORE=postgres a schema of its own
# on the test server (TD_TEST_PG_URL, or the url= line of the state file
# TD_TEST_PG_STATE that scripts/start-postgres.sh wrote). pg_server_url
# prints that server's URL, psql_store URL SQL runs SQL in a store's schema.

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
# this shell's pid and a counter.
pg_schema_url() {
  local server
  server=$(pg_server_url) || return 1
  store_url_counter=$((store_url_counter + 1))
  printf '%s?options=-csearch_path%%3Ds%s_%s_%s\n' "$server" "$$" "$store_url_counter" \
    "$(printf '%s' "$1" | tr -c 'a-z0-9' '_')"
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
