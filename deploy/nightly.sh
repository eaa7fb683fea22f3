#!/bin/sh
# One nightly run: load the CRM's exports (when given), retrain and let champion/challenger decide on
# promotion, score every open lead with the champion into the database, monitor, and evaluate past runs.
#
# Exit status, for the scheduler to act on:
#   0  done, the scored base is stable
#   2  bad input or configuration (a file, a column, a URL): nothing was written by the failing step
#   3  the scores are written, but monitoring raised an alert: hold whatever syncs them downstream
#   other  a failure of the machine or a service (retry the run)
#
# Settings (environment):
#   LEAD_SCORING_DB   database URL holding the tables (default: duckdb:///crm.duckdb)
#   CRM_EXPORT_DIR    folder with leads, events and deals exports (.csv or .parquet) to load first (optional)
#   AS_OF             score as of this time (default: now, UTC)
#   MODEL_NAME        registered model (default: lead-conversion)
set -u
DB="${LEAD_SCORING_DB:-duckdb:///crm.duckdb}"
MODEL_NAME="${MODEL_NAME:-lead-conversion}"
TABLES="--leads crm_leads --events crm_events --deals crm_deals"

step() {  # run one step; stop the run with its status unless it is 0 (or 3 for scoring, handled below)
    echo "nightly: $*" >&2
    "$@"
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "nightly: stopped, '$1 $2' exited with status $status" >&2
        exit "$status"
    fi
}

if [ -n "${CRM_EXPORT_DIR:-}" ]; then
    for table in leads events deals; do
        file=$(ls "$CRM_EXPORT_DIR/$table".csv "$CRM_EXPORT_DIR/$table".parquet 2>/dev/null | head -n 1)
        if [ -z "$file" ]; then
            echo "nightly: no $table export (.csv or .parquet) in $CRM_EXPORT_DIR" >&2
            exit 2
        fi
        step lead-serve load "$file" --db "$DB" --table "crm_$table" -q
    done
fi

# Retrain; the new model replaces the champion only if it is not worse on the same recent test window.
step lead-train train --db "$DB" $TABLES --model-name "$MODEL_NAME" -q

# Score with the champion; the run is also compared with the model's reference and the previous run.
echo "nightly: lead-serve score" >&2
lead-serve score --model "models:/$MODEL_NAME@champion" --db "$DB" $TABLES ${AS_OF:+--as-of "$AS_OF"} \
    --out lead_scores --history-table score_history --monitoring-out reports/monitoring --fail-on-drift -q
scored=$?
if [ "$scored" -ne 0 ] && [ "$scored" -ne 3 ]; then
    echo "nightly: stopped, 'lead-serve score' exited with status $scored" >&2
    exit "$scored"
fi

# Stored runs against the outcomes that came in since (estimated beside realised).
step lead-serve history --db "$DB" --history-table score_history --evaluate --deals crm_deals -q
exit "$scored"
