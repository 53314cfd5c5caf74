# order_steps.jq: where an order's time goes, from one store's events (the
# single-process shop's, or the orders process's in the shop as services,
# which holds the others' events as received, with their senders'
# occurred_at; one host, one clock). Input: `tidings events` as an array
# (jq -s). For each order that went to Processing, the time from the
# saga's ReserveInventory to inventory's last StockReserved for it, from
# there to ProcessPayment, from there to PaymentProcessed, from there to
# the final OrderStatusChanged, and OrderCreated to final; prints the
# number of such orders and the median of each step, in ms.
def t: (.occurred_at | capture("^(?<s>[^.]*)(?<f>\\.[0-9]+)?Z$")) as $c
  | ($c.s + "Z" | fromdateiso8601) + (($c.f // ".0") | tonumber);
def oid: if .data.order_id then .data.order_id else (.stream | sub("^[a-z]+-"; "")) end;
def med: sort | if length == 0 then null else .[(length / 2 | floor)] end;
[ .[] | select(.type | IN("OrderCreated","ReserveInventory","StockReserved","ProcessPayment","PaymentProcessed","OrderStatusChanged"))
  | {o: oid, type, t: t, status: .data.to_status} ]
| group_by(.o)
| map(reduce .[] as $e ({}; if $e.type == "StockReserved" then .StockReserved = ([.StockReserved // 0, $e.t] | max)
      elif $e.type == "OrderStatusChanged" then (if $e.status == "Processing" then .Final = $e.t else . end)
      else .[$e.type] = (.[$e.type] // $e.t) end))
| map(select(.OrderCreated and .ReserveInventory and .StockReserved and .ProcessPayment and .PaymentProcessed and .Final))
| { orders: length,
    reserve_ms: (map((.StockReserved - .ReserveInventory) * 1000) | med),
    to_payment_ms: (map((.ProcessPayment - .StockReserved) * 1000) | med),
    charge_ms: (map((.PaymentProcessed - .ProcessPayment) * 1000) | med),
    to_final_ms: (map((.Final - .PaymentProcessed) * 1000) | med),
    created_to_final_ms: (map((.Final - .OrderCreated) * 1000) | med) }
| map_values(if type == "number" then (. * 10 | round / 10) else . end)
