"""The nightly run (deploy/nightly.sh) as an Airflow DAG: one task per step, acting on the commands' exit codes.

Exit codes: 0 done; 2 bad input (the task fails; a retry fails the same way, a person must look); 3 from
scoring: scores written but monitoring raised an alert (the task is skipped, and so the downstream sync);
anything else: retried.
Put this file in Airflow's dags folder on a worker where the project is installed (the Docker image).
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

DB = "{{ var.value.get('lead_scoring_db', 'postgresql://crm@postgres:5432/crm') }}"
TABLES = "--leads crm_leads --events crm_events --deals crm_deals"
EXPORTS = "{{ var.value.get('crm_export_dir', '/srv/exports') }}"

with DAG(dag_id="lead_scoring_nightly", schedule="15 2 * * *", start_date=datetime(2026, 1, 1), catchup=False,
         max_active_runs=1, default_args={"retries": 2, "retry_delay": timedelta(minutes=10)}) as dag:
    loads = [BashOperator(task_id=f"load_{table}",
                          bash_command=f"lead-serve load {EXPORTS}/{table}.parquet --db {DB} --table crm_{table} -q")
             for table in ("leads", "events", "deals")]
    # Champion/challenger: promoted only if not worse on the same recent test window.
    train = BashOperator(task_id="retrain_compare_promote",
                         bash_command=f"lead-train train --db {DB} {TABLES} -q")
    score = BashOperator(task_id="score_and_monitor", skip_on_exit_code=3,
                         bash_command=f"lead-serve score --db {DB} {TABLES} --out lead_scores "
                                      "--history-table score_history --fail-on-drift -q")
    sync = BashOperator(task_id="sync_downstream", bash_command="echo 'hand lead_scores to the CRM here'")
    evaluate = BashOperator(task_id="evaluate_history", trigger_rule="all_done",
                            bash_command=f"lead-serve history --db {DB} --history-table score_history "
                                         "--evaluate --deals crm_deals -q")
    loads >> train >> score >> sync
    score >> evaluate
