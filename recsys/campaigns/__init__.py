"""Precision marketing on randomised campaigns: uplift models and targeting policy / ROI
(``uplift``, ``policy``), campaign assignment and analysis, recommendation A/B experiments.

Campaign data comes in through :func:`etl.campaign.load_campaign_table` (one row per customer:
``customer_id``, ``arm``, outcomes, covariates). See ``docs/marketing.md``.
"""
