"""pydantic models of the custom resources; crds/ is generated from them."""
