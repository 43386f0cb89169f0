"""Customer value: CLV (BG/NBD + Gamma-Gamma), measured social influence, segments, audiences.

Entry points (imported from their modules; nothing heavy is imported here):

* :func:`recsys.value.pipeline.compute_customer_value` -> ``CustomerValueResult``;
  :func:`recsys.value.pipeline.write_back`, :func:`~recsys.value.pipeline.save_result`,
  :func:`~recsys.value.pipeline.load_result`, :func:`~recsys.value.pipeline.run_value_job`.
* :func:`recsys.value.clv.cdnow_report` — the ``socialrec clv --dataset cdnow --json`` object.
* :func:`recsys.value.audience.build_audience` — campaign audiences with CELF seeding.
* :func:`recsys.value.report.write_report` — the HTML report.

See ``docs/customer-value.md``.
"""
