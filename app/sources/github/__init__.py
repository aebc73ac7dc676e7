"""GitHub webhook bodies (Actions, checks, deployments, pushes, security alerts), bare or enveloped.

Source of truth: GitHub's webhook payload documentation and the octokit/webhooks payload
examples (`payload-examples/api.github.com/`). The envelope is Probot's event object
`{"name": <X-GitHub-Event>, "id": <X-GitHub-Delivery>, "payload": <body>}`; a bare body carries
no event name, so its kind is detected from its top-level keys. The delivery id never enters
the event id, so a body gives the same event bare or enveloped.

Event time per kind (always a field of the record, never the clock; `time_field` says which):
- workflow_run, check_suite (`ci_run`): `updated_at`, the status change this delivery reports
  (the completion time of a completed run); else `run_started_at` / `created_at`.
- workflow_job, check_run (`ci_job`): `completed_at` once completed, `started_at` while in
  progress, `created_at` while queued, each falling back to the others.
- deployment_status (`deployment`): `deployment_status.created_at`, else its `updated_at`.
- push: `repository.pushed_at` (the push itself; a commit's timestamp can be days older),
  else `head_commit.timestamp`.
- alerts: the transition's own stamp (`fixed_at`, `dismissed_at`, `resolved_at`, ...), then
  `created_at` (for `created`) or `updated_at` (later transitions); last resort
  `repository.updated_at`, because octokit's secret-scanning example carries no alert time.

Modules: `adapter` (detection and dispatch), `runs` (Actions and checks), `changes` (pushes,
deployment statuses), `alerts` (security alerts), `parsed` (what a parser returns); helpers
shared with the GitLab adapter are in app/sources/ci_common.py.
"""
