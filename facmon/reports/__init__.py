"""Reports for people outside the control room: the insurer's elevator report (facmon.reports.insurance) and the
property
manager's monthly KPI report (facmon.reports.kpi_monthly), each as JSON, CSV and PDF.

Reports read what the rest of facmon wrote (work orders in the database, figures in InfluxDB, the site file) and
change nothing.
"""
