"""Alert sinks: deliver `vigil.alerts` notification records to Alertmanager and webhooks.

Faust-free: payload builders (`alertmanager`, `webhook`), HTTP delivery with retries
(`delivery`), settings (`config`) and the dispatcher that turns failures into retry-topic and
dead-letter records (`dispatch`). The agents in `agents/sinks.py` only move records.
"""
