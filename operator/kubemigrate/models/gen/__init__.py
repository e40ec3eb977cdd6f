"""What is generated from the models: the CRDs (crds/, the chart's templates) and
docs/resources.md. Run as ``python -m kubemigrate.models.gen.crds`` and
``python -m kubemigrate.models.gen.reference``; tests fail when the outputs drift."""
