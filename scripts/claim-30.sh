#!/usr/bin/env bash
# Issue #15's long runs in the order of docs/benchmarks.md, on two lanes of one core each.
# Every command resumes its store (finished tasks are skipped), so after a stop the same
# script carries on where the lanes were. The lanes write to different stores, so the two
# processes never wait on a store's lock.
#
#   lane 1: recipe-ablation's middle steps (@schedule+depth4 first), then default-recipe-30
#           (split 0 first, then splits 1-2 of the claim's models, PSiLON Net, StandardNet
#           and random forest, whose verdict needs all 3 splits; then the other models)
#   lane 2: paper-exact on the 6 ablation sets, then on all 30
#   (once paper-exact is complete, lane 1 runs default-recipe-30 with two jobs: both cores)
#   or, with `start exact-first`, one lane on both cores: lane 2 with two jobs, then lane 1
#   with two jobs (paper-exact's verdict sooner; the same work in all)
#
# The ablation's end points are other stores' fits: @tabular is paper-tabular's, @exact is
# paper-exact's. Lane 1 never runs them: it copies what paper-exact has finished
# (--reuse-only) before and after its own tasks, and `scripts/claim-30.sh reports` copies
# the rest later. Usage:
#
#   scripts/claim-30.sh            # start or resume both lanes in the background
#   FINISH_BY=21:45 scripts/claim-30.sh   # ... starting only tasks that should end by 21:45 (or +2h30m)
#                                  # (a session that stops then: the short tasks fill its end)
#   scripts/claim-30.sh start lane1   # only one lane (e.g. after stopping it to pick up new code)
#   scripts/claim-30.sh start exact-first   # paper-exact on both cores, then default-recipe-30 on both
#   scripts/claim-30.sh run lane1  # a lane in the foreground (its commands in this terminal; Ctrl-C stops it)
#   scripts/claim-30.sh stop       # stop both lanes now (a warm path keeps its finished lambdas)
#   scripts/claim-30.sh status     # each store: tasks finished, tasks in flight and how far, the rest's estimate
#   scripts/claim-30.sh reports    # copy the finished end points, write the four reports
#
# Logs: results-logs/claim-30-lane{1,2}.log (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

PSILON=${PSILON:-.venv/bin/psilon}
export PSILON_DATA_DIR=${PSILON_DATA_DIR:-../shared/data}
R=docs/results
SIX=cpu_act,pol,house_16H,magic,twonorm,churn
RUN=(--jobs 1 --threads 1 --no-progress --no-report)
# A clock time (21:45), an ISO date-time or a duration (+2h30m), fixed here once to a
# date-time by psilon's own parser: resolved by each command of a lane, a clock time passed
# while the lane ran would mean tomorrow (a lane ran on past its 06:25 on 2026-12-01), and
# +2h would move on with every command.
if [ -n "${FINISH_BY:-}" ]; then
    FINISH_BY=$("$(dirname "$PSILON")/python" -c '
import sys
from psilon.bench.deadline import parse_finish_by
try:
    print(parse_finish_by(sys.argv[1]).isoformat(timespec="seconds"))
except ValueError as exc:
    sys.exit(f"claim-30: FINISH_BY: {exc}")' "$FINISH_BY")
    RUN+=(--finish-by "$FINISH_BY")
fi
# The ablation's middle steps, @schedule+depth4 first: on cpu_act @schedule changed nothing
# (ratio 1.021 -> 1.020), so the step that separates the 4th layer from the warm start
# comes first on every set.
DEPTH4=standard-net@schedule+depth4,psilon-net@schedule+depth4
SCHEDULE=standard-net@schedule,psilon-net@schedule
# The models of default-recipe-30's verdict on 21 of 30 (PSiLON Net against each rival):
# their splits 1-2 come before the other models', so the verdict is settled first.
CLAIM_MODELS=psilon-net,standard-net,random-forest
ENDS=(--reuse "$R/paper-tabular" --reuse "$R/paper-exact")

ablation_ends() {
    "$PSILON" bench recipe-ablation --out "$R/recipe-ablation" "${RUN[@]}" "${ENDS[@]}" --reuse-only
}

tasks_left() {  # tasks_left PROTOCOL: how many of its tasks its store lacks
    "$(dirname "$PSILON")/python" -c '
import sys
from psilon.bench.protocols import PROTOCOLS
from psilon.bench.store import ResultStore
name, store = sys.argv[1], sys.argv[2]
done = ResultStore(f"{store}/results.jsonl").finished_keys()
print(sum(t.key not in done for t in PROTOCOLS[name].tasks()))' "$1" "$R/$1"
}

lane1() {
    ablation_ends
    "$PSILON" bench recipe-ablation --out "$R/recipe-ablation" "${RUN[@]}" "${ENDS[@]}" \
        --models "linear,random-forest,$DEPTH4"
    "$PSILON" bench recipe-ablation --out "$R/recipe-ablation" "${RUN[@]}" "${ENDS[@]}" --models "$SCHEDULE"
    ablation_ends
    # Lane 2 ends with paper-exact: once it is complete, default-recipe-30 takes both cores
    # (the later --jobs overrides the one in RUN).
    # ALONE=1: nothing runs beside this lane (exact-first), so both cores are its.
    local jobs=(--jobs 1)
    if [ "${ALONE:-0}" = 1 ] || [ "$(tasks_left paper-exact)" = 0 ]; then jobs=(--jobs 2); fi
    "$PSILON" bench default-recipe-30 --out "$R/default-recipe-30" "${RUN[@]}" "${jobs[@]}" --splits 0 \
        --reuse "$R/paper-tabular" --reuse "$R/paper-exact"
    "$PSILON" bench default-recipe-30 --out "$R/default-recipe-30" "${RUN[@]}" "${jobs[@]}" --models "$CLAIM_MODELS" \
        --reuse "$R/paper-tabular" --reuse "$R/paper-exact"
    "$PSILON" bench default-recipe-30 --out "$R/default-recipe-30" "${RUN[@]}" "${jobs[@]}" \
        --reuse "$R/paper-tabular" --reuse "$R/paper-exact"
}

lane2() {  # EXACT_JOBS=2: both cores (exact-first)
    local jobs=(--jobs "${EXACT_JOBS:-1}")
    "$PSILON" bench paper-exact --out "$R/paper-exact" "${RUN[@]}" "${jobs[@]}" --datasets "$SIX" \
        --reuse "$R/paper-tabular" --reuse "$R/default-recipe-30"
    "$PSILON" bench paper-exact --out "$R/paper-exact" "${RUN[@]}" "${jobs[@]}" \
        --reuse "$R/paper-tabular" --reuse "$R/default-recipe-30"
}

reports() {
    ablation_ends || true  # the store may be locked by a running lane: its next pass copies them
    for store in paper-exact default-recipe-30 recipe-ablation; do
        "$PSILON" report "$R/$store"
    done
    "$PSILON" report "$R/paper-exact" "$R/default-recipe-30" "$R/recipe-ablation" --out "$R/claim-30"
}

ensure_peers() {  # realmlp-td needs pytabkit (psilon[peers]), which `make` does not install
    "$(dirname "$PSILON")/python" -c "import pytabkit" 2> /dev/null && return
    echo "claim-30: installing psilon[peers] (pytabkit, for default-recipe-30's realmlp-td)"
    "$(dirname "$PSILON")/python" -m pip install -q -c constraints.txt -e ".[peers]"
}

start_lane() {  # start_lane lane1|lane2 [store pattern]: refuses if that lane's stores are being run
    if pgrep -f "psilon bench ($2) " > /dev/null; then
        echo "claim-30: a run of $1's stores is already going (pgrep -af 'psilon bench'); not starting another" >&2
        return 1
    fi
    mkdir -p results-logs
    case $1 in
        lane1) nohup bash -c "$(declare -f ablation_ends tasks_left lane1); $(declare -p PSILON R RUN DEPTH4 SCHEDULE CLAIM_MODELS ENDS); lane1" \
                   >> results-logs/claim-30-lane1.log 2>&1 & ;;
        lane2) nohup bash -c "$(declare -f lane2); $(declare -p PSILON R SIX RUN); lane2" \
                   >> results-logs/claim-30-lane2.log 2>&1 & ;;
        exact-first)
            nohup bash -c "$(declare -f ablation_ends tasks_left lane1 lane2); $(declare -p PSILON R SIX RUN DEPTH4 SCHEDULE CLAIM_MODELS ENDS); EXACT_JOBS=2 ALONE=1; lane2; lane1" \
                   >> results-logs/claim-30-exact-first.log 2>&1 & ;;
    esac
}

case "${1:-start}" in
    start)
        ensure_peers
        case "${2:-both}" in
            both) start_lane lane1 "default-recipe-30|recipe-ablation|paper-exact" || exit 1
                  start_lane lane2 "paper-exact|default-recipe-30|recipe-ablation" ;;
            lane1) start_lane lane1 "default-recipe-30|recipe-ablation" ;;
            lane2) start_lane lane2 "paper-exact" ;;
            exact-first) start_lane exact-first "paper-exact|default-recipe-30|recipe-ablation" ;;
            *) echo "usage: $0 start [lane1|lane2|exact-first]" >&2; exit 2 ;;
        esac
        echo "claim-30: ${2:-both lanes} started${FINISH_BY:+, starting only tasks that should end by $FINISH_BY}; logs in results-logs/, progress: $0 status"
        ;;
    stop)
        # The lane shells first: killed alone, a run would let its lane go on to the next command.
        pkill -f -- "; lane[12]\$" || true
        pkill -f "psilon bench (paper-exact|recipe-ablation|default-recipe-30) " || true
        echo "claim-30: lanes stopped; '$0' resumes them"
        ;;
    run)
        case "${2:-}" in
            lane1) lane1 ;;
            lane2) lane2 ;;
            *) echo "usage: $0 run lane1|lane2" >&2; exit 2 ;;
        esac
        ;;
    status) "$PSILON" status "$R/paper-exact" "$R/recipe-ablation" "$R/default-recipe-30" ;;
    reports) reports ;;
    *) echo "usage: $0 [start [lane1|lane2|exact-first] | run lane1|lane2 | stop | status | reports]" >&2; exit 2 ;;
esac
