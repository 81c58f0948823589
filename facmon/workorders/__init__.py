"""Work orders, shared by the rules, the API, the notifier and the reports.

Tables (`tables`), the lifecycle as a transition table (`transitions`), SLA profiles and deadlines (`sla`), status
changes from any source (`workflow`), read queries (`queries`), the timeline export to InfluxDB (`lifecycle`) and the
monitor that records each breached deadline once (`breaches`).
"""
