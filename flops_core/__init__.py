"""The bottom layer every FLOps service builds on: shared vocabulary and mechanisms.

What more than one service needs lives here and nowhere else: names (flavours, strategy names,
project states, image names), the error base, logging and redaction, the event reporter, the
command runner, repo fetching, requirement planning, the ML-repo contract checker, the
registry client and the MLflow launcher. Services (`flops_manager`, `image_builder`,
`flops_aggregator`, `flops_learner`, `flops_data_server`, `flops_cli`) import this package
and the SDK (`flops_utils`), never each other; this package imports no service.
"""
