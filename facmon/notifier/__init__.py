"""notifier: alerts to on-call technicians along rotas and escalation policies, over webhooks, e-mail and MQTT push."""
