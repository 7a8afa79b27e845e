# The rounds of one run of scripts/bench.sh, ssechat beside nginx + nchan: for each scenario
# and figure, each round's figure for both servers, their ratio ssechat / nchan per round and
# the ratio's spread (lowest–highest) over the rounds, and whether ssechat met its target in
# every round. Prints a markdown section that bench.sh puts at the top of the page.
#
# Input: the results file, one JSON object per run, as the load tester printed it plus the
# fields bench.sh adds: "round" and, when other work was running, "disturbed".
# Usage: jq -r -s --argjson rounds N -f scripts/bench-rounds.jq results.jsonl

# --- Numbers in words ----------------------------------------------------------------------
def group: if length > 3 then (.[0:-3] | group) + "," + .[-3:] else . end;
def int: round | tostring | group;
# `n` decimals, zero-padded: 1.5 | fixed(2) is "1.50". For figures of 0 and above.
def fixed(n):
  (. * pow(10; n) | round | tostring) as $d
  | (n + 1 - ($d | length)) as $pad
  | (if $pad > 0 then ("0" * $pad) + $d else $d end)
  | .[0:length - n] + "." + .[length - n:];
def ms: if . >= 100 then "\(int) ms" else "\(fixed(2)) ms" end;
def show($unit):
  if $unit == "s" then "\(fixed(2)) s"
  elif $unit == "KiB" then "\(fixed(1)) KiB"
  elif $unit == "ms" then ms
  else int end;

# --- One run ------------------------------------------------------------------------------
def step: if (.steps | length) == 1 then .steps[0] else null end;
def clean:
  step as $s | $s != null
  and $s.lost == 0 and $s.duplicated == 0 and $s.out_of_order == 0 and $s.disconnected == 0;
# The rate asked for was kept (within 5 %), as the renderer judges it.
def held: step as $s | $s != null and ($s.asked_rate == null or $s.posts.acknowledged_per_s >= 0.95 * $s.asked_rate);

# The figure a row shows, or null.
def figure($what):
  if .error != null then null
  elif $what == "connect" then .connect.seconds
  elif $what == "kib" then .memory.kib_per_stream
  elif $what == "p99" then step.latency.p99_ms
  elif $what == "events" then step.delivered_per_s
  elif $what == "acked" then step.posts.acknowledged_per_s
  elif $what == "best" then .search.best_rate
  elif $what == "join" then .join.join_s
  elif $what == "presence" then (if .join == null then null else .join.presence_bytes_per_user / 1024 end)
  else null end;

# What went wrong in a run besides the figure of row `$row`, in words.
def trouble($row):
  if .error != null then []
  elif .join != null then
    [if .join.joined < .join.users then "\(.join.joined | int) of \(.join.users | int) joined" else empty end,
     if .join.converged < .join.users then "\(.join.converged | int) views right" else empty end]
  elif step != null then
    step
    | [if .lost > 0 then "\(.lost | int) lost" else empty end,
       if .duplicated > 0 then "\(.duplicated | int) duplicated" else empty end,
       if .out_of_order > 0 then "\(.out_of_order | int) out of order" else empty end,
       if .disconnected > 0 then "\(.disconnected | int) disconnected" else empty end,
       if $row.what != "acked" and .asked_rate != null and .posts.acknowledged_per_s < 0.95 * .asked_rate
         then "\(.posts.acknowledged_per_s | int) of \(.asked_rate | int) msg/s acked" else empty end]
  elif .connect != null and .connect.connected < .connect.streams then
    ["\(.connect.connected | int) of \(.connect.streams | int) connected"]
  else [] end;

# One run's cell: its figure, what went wrong, ‡ when other work was running.
def cell($row):
  if . == null then "—"
  elif .error != null then "no result"
  else
    figure($row.what) as $f
    | (if $f == null then (if $row.what == "best" then "none held" else "n/a" end)
       elif $row.what == "acked" and step.asked_rate != null then "\($f | int) of \(step.asked_rate | int)"
       else $f | show($row.unit) end)
      + (trouble($row) | if length > 0 then " (\(join(", ")))" else "" end)
      + (if .disturbed != null then " ‡" else "" end)
  end;

# Did ssechat's run (the input) meet the row's target? `$nchan`: nchan's run in the same
# round; `$smallest`: presence bytes per user at the smallest join size in the same round.
def met($row; $nchan; $smallest; $largest):
  if . == null or .error != null then null
  elif $row.check == "idle-connect" then .connect != null and .connect.connected == .connect.streams and .connect.seconds < 1
  elif $row.check == "idle-kib" then .memory != null and .memory.kib_per_stream < 10
  elif $row.check == "p99-5" then clean and held and step.latency.p99_ms < 5
  elif $row.check == "events-full" then
    clean and held and step.delivered_per_s >= 0.95 * (step.asked_rate // 0) * step.subscribers
  elif $row.check == "p99-100" then clean and held and step.latency.p99_ms < 100
  elif $row.check == "best-50" then (.search.best_rate // 0) >= 50
  elif $row.check == "posts-40000" then clean and step.posts.acknowledged_per_s >= 40000
  elif $row.check == "held" then clean and held
  elif $row.check == "join" then
    .join != null and .join.joined == .join.users and .join.converged == .join.users
    and (.join.users < $largest or .join.join_s < 2)
  elif $row.check == "flat" then
    .join != null and $smallest != null and .join.presence_bytes_per_user <= 1.1 * $smallest
  elif $row.check == "twice-nchan" then
    ($nchan.search.best_rate // 0) as $theirs
    | $theirs > 0 and (.search.best_rate // 0) >= 2 * $theirs
  else null end;

# --- The rows -------------------------------------------------------------------------------
. as $all
| [range(1; $rounds + 1)] as $round_numbers
| ([$all[] | .label] | unique) as $labels
| ([$labels[] | select(startswith("join-")) | ltrimstr("join-") | tonumber] | sort) as $join_sizes
| def run($name; $target; $r):
    first($all[] | select(.label == $name and .target == $target and .round == $r)) // null;
  def smallest_presence($r):
    if ($join_sizes | length) == 0 then null
    else run("join-\($join_sizes[0])"; "ssechat"; $r) | if . == null or .join == null then null else .join.presence_bytes_per_user end
    end;
  ([
    {label: "idle", metric: "time to connect all streams", what: "connect", unit: "s", better: "lower",
     target: "all connected in under 1 s", check: "idle-connect"},
    {label: "idle", metric: "RSS per stream", what: "kib", unit: "KiB", better: "lower",
     target: "under 10 KiB", check: "idle-kib"},
    {label: "fanout-1000", metric: "delivery p99", what: "p99", unit: "ms", better: "lower",
     target: "under 5 ms, rate held, 0 lost", check: "p99-5"},
    {label: "fanout-5000", metric: "delivered events/s", what: "events", unit: "int", better: "higher",
     target: "every message to every subscriber at the asked rate (250,000/s in the full run), 0 lost, 0 dropped", check: "events-full"},
    {label: "fanout-5000", metric: "delivery p99", what: "p99", unit: "ms", better: "lower",
     target: "under 100 ms, rate held, 0 lost", check: "p99-100"},
    {label: "fanout-5000-cluster", metric: "delivered events/s", what: "events", unit: "int", better: "higher",
     target: "as on one process, 0 lost, 0 dropped (nchan has no shared mode)", check: "events-full"},
    {label: "fanout-5000-cluster", metric: "delivery p99", what: "p99", unit: "ms", better: "lower",
     target: "under 100 ms, rate held, 0 lost", check: "p99-100"},
    {label: "search-5000", metric: "highest rate that held, messages/s", what: "best", unit: "int", better: "higher",
     target: "at least 50", check: "best-50"},
    {label: "throughput", metric: "acked posts/s (ssechat's durable)", what: "acked", unit: "int", better: "higher",
     target: "at least 40,000, 0 lost", check: "posts-40000"}
  ]
  + [$join_sizes[] as $n
     | {label: "join-\($n)", metric: "join time", what: "join", unit: "s", better: "lower",
        target: ("all \($n | int) joined, views right" + (if $n == $join_sizes[-1] then ", under 2 s" else "" end)),
        check: "join"},
       {label: "join-\($n)", metric: "presence bytes per user", what: "presence", unit: "KiB", better: "lower",
        target: "flat as N grows (within 1.1× of N = \($join_sizes[0] | int))", check: "flat"}]
  + [
    {label: "rooms-1000", metric: "highest total rate that held, messages/s", what: "best", unit: "int", better: "higher",
     target: "at least 2× nchan's", check: "twice-nchan"},
    {label: "rooms-followed", metric: "acked messages/s", what: "acked", unit: "int", better: "higher",
     target: "the asked rate held, 0 lost", check: "held"},
    {label: "rooms-followed", metric: "delivery p99", what: "p99", unit: "ms", better: "lower",
     target: "under 100 ms, rate held, 0 lost", check: "p99-100"}
  ]
  | map(select(.label as $l | $labels | any(. == $l)))) as $rows
| def ratio_text: "\(fixed(2))×";
  (
    "## ssechat and nginx + nchan, round by round",
    "",
    "\($rounds) rounds. Each round ran every scenario, and each scenario against ssechat and nginx + nchan one right after the other, each server fresh: ssechat first in odd rounds, nchan first in even ones. Figures are per round, in round order (round 1 / round 2 / …). The ratio is ssechat's figure over nchan's in the same round; whether a higher or a lower ratio is better for ssechat is said with it. Its spread is the lowest and the highest ratio over the rounds: where it straddles 1, the two servers were not told apart. Met?: in how many rounds ssechat met its target. — : not run. ‡: other work was running at the start or the end of that run. Hono on Bun runs in round 1 only; the sections below show round 1.",
    "",
    "| Scenario | Figure | nginx + nchan, per round | ssechat, per round | ssechat / nchan, per round | Spread of the ratio | Target for ssechat | Met? |",
    "|---|---|---|---|---|---|---|---|",
    ($rows[] as $row
     | [$round_numbers[] as $r | {r: $r, ours: run($row.label; "ssechat"; $r), theirs: run($row.label; "nchan"; $r)}] as $per_round
     | [$per_round[]
        | (.ours | if . == null then null else figure($row.what) end) as $o
        | (.theirs | if . == null then null else figure($row.what) end) as $t
        | if $o != null and $t != null and $t > 0 then $o / $t else null end] as $ratios
     | [$ratios[] | select(. != null)] as $known
     | [$per_round[] as $p
        | $p.ours | met($row; $p.theirs; smallest_presence($p.r); ($join_sizes[-1] // 0))] as $verdicts
     | [$verdicts[] | select(. != null)] as $judged
     | "| `\($row.label)` | \($row.metric) (\($row.better) is better) | "
       + (if all($per_round[]; .theirs == null) then "not run"
          else [$per_round[] | .theirs | cell($row)] | join(" / ") end)
       + " | "
       + (if all($per_round[]; .ours == null) then "not run"
          else [$per_round[] | .ours | cell($row)] | join(" / ") end)
       + " | "
       + (if ($known | length) == 0 then "n/a"
          else ([$ratios[] | if . == null then "n/a" else ratio_text end] | join(" / "))
               + " (\($row.better) is better)" end)
       + " | "
       + (if ($known | length) == 0 then "n/a"
          elif ($known | length) == 1 then "\($known[0] | ratio_text) (one round)"
          else "\($known | min | fixed(2))–\($known | max | ratio_text)" end)
       + " | \($row.target) | "
       + (if ($judged | length) == 0 then "no result"
          elif all($judged[]; .) and ($judged | length) == $rounds then "yes, \($rounds) of \($rounds) rounds"
          else "**no**: met in \([$judged[] | select(.)] | length) of \($rounds) rounds"
               + (($rounds - ($judged | length)) as $none | if $none > 0 then " (\($none) without a result)" else "" end)
          end)
       + " |")
  )
