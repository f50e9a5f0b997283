"""The SageMaker provider object: one boto3 session, clients made on first use, S3 locations.

botocore's own retries are off (``total_max_attempts=1``): mlport's retry policy is the only one,
so retries never multiply and a throttled call is retried with the backoff every provider shares.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlport.errors import RETRYABLE, AlreadyExistsError, ConfigError, MlportError
from mlport.services import Provider
from mlport_sagemaker import SageMakerConfig

if TYPE_CHECKING:
    from mlport_sagemaker.storage import S3Storage

__all__ = ["SageMakerProvider"]

_DEFAULT_REGION = "us-east-1"


class SageMakerProvider(Provider):
    """Training, registry, endpoints, monitoring, notebooks and storage on SageMaker."""

    config: SageMakerConfig
    service_classes = {
        "training": "mlport_sagemaker.training:SageMakerTraining",
        "registry": "mlport_sagemaker.registry:SageMakerRegistry",
        "endpoints": "mlport_sagemaker.endpoints:SageMakerEndpoints",
        "monitoring": "mlport_sagemaker.monitoring:SageMakerMonitoring",
        "notebooks": "mlport_sagemaker.notebooks:SageMakerNotebooks",
        "storage": "mlport_sagemaker.storage:S3Storage",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @cached_property
    def session(self) -> Any:
        """The boto3 session: the ``session=`` given to ``connect``, or one from the profile."""
        given = self.runtime.get("session")
        if given is not None:
            return given
        import boto3

        return boto3.session.Session(
            profile_name=self.config.profile_name, region_name=self.config.region
        )

    @property
    def region(self) -> str:
        """The region every client talks to."""
        return self.config.region or self.session.region_name or _DEFAULT_REGION

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` (``sagemaker``, ``s3``, ``logs``...), made once.

        Thread-safe: boto3 sessions are not, so clients are made under a lock.
        """
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                from botocore.config import Config

                config = Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=70,
                    user_agent_extra="mlport",
                    max_pool_connections=20,
                )
                found = self.session.client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.config.endpoint_url,
                    config=config,
                )
                self._clients[service] = found
            return found

    @property
    def sagemaker(self) -> Any:
        """The SageMaker control-plane client."""
        return self.client("sagemaker")

    @property
    def storage(self) -> S3Storage:
        """The S3 store (the ``storage`` service)."""
        return self.service("storage")  # type: ignore[return-value]

    @property
    def role(self) -> str:
        """The execution role ARN.

        Raises:
            ConfigError: the profile names none.
        """
        if not self.config.role:
            raise ConfigError(
                "the sagemaker profile needs role = 'arn:aws:iam::<account>:role/<name>' (the "
                "execution role SageMaker assumes); `mlport providers show sagemaker "
                "--iam-policy` prints the permissions it needs"
            )
        return self.config.role

    @property
    def account(self) -> str:
        """The AWS account id, read from the role ARN (no call to STS)."""
        return self.role.split(":")[4]

    @property
    def bucket(self) -> str:
        """The S3 bucket of the profile.

        Raises:
            ConfigError: the profile names none.
        """
        if not self.config.bucket:
            raise ConfigError(
                "the sagemaker profile needs bucket = '<name>' (an S3 bucket in the same region "
                "for code bundles, staged inputs, models and reports)"
            )
        return self.config.bucket

    def s3_uri(self, *parts: str) -> str:
        """``s3://<bucket>/<prefix>/<parts...>``."""
        keys = [self.config.prefix, *(part.strip("/") for part in parts)]
        return f"s3://{self.bucket}/" + "/".join(key for key in keys if key)

    @property
    def serving_image(self) -> str:
        """The image URI of the mlport serving container (profile key ``serving_image``)."""
        if self.config.serving_image:
            return self.config.serving_image
        from mlport import __version__

        return f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/mlport-serving:{__version__}"

    def failed_for_good(self, error: BaseException) -> bool:
        """True if ``error`` means the call did not take effect: not a throttle, a transient
        failure or a lost answer (after which the resource may exist) and not an interrupt."""
        if not isinstance(error, Exception):
            return False
        mapped = error if isinstance(error, MlportError) else self.translate_error(error)
        return mapped is not None and not isinstance(mapped, (*RETRYABLE, AlreadyExistsError))

    def translate_error(self, error: Exception) -> MlportError | None:
        """Map botocore errors onto the mlport hierarchy (``_errors.py``)."""
        from mlport_sagemaker._errors import translate

        return translate(error)

    def close(self) -> None:
        """Close the clients' HTTP connection pools."""
        with self._lock:
            clients, self._clients = self._clients, {}
        for found in clients.values():
            close = getattr(found, "close", None)
            if close is not None:
                close()
