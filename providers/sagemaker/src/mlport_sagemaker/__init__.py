"""The AWS SageMaker provider of mlport (work in progress)."""
