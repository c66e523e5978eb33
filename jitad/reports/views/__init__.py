"""The Reports area: KPI pages, their charts and exports."""
