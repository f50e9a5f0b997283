"""``google.cloud.aiplatform.v1.PredictionService``: Predict and RawPredict.

A request goes to one deployed model, chosen by the endpoint's traffic split
(https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints/predict),
and is answered by that model's server (the portable model server on the Vertex contract:
``{"instances": [...], "parameters": ...}`` -> ``{"predictions": [...]}``).
"""

from __future__ import annotations

import json
import random
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.api import httpbody_pb2  # type: ignore[import-untyped, unused-ignore]
from google.cloud.aiplatform_v1.types import prediction_service as ps
from google.protobuf import json_format, struct_pb2  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator._rpc import ApiError, RpcRouter, invalid, proto_plus
from mlport_vertex.emulator.endpoints import EndpointService, server_key
from mlport_vertex.emulator.models import ModelService
from mlport_vertex.emulator.serving import ModelRuntime
from mlport_vertex.emulator.state import EmulatorState
from mlport_vertex.emulator.workers import ModelServer, ModelServerError

__all__ = ["PredictionService"]

SERVICE = "google.cloud.aiplatform.v1.PredictionService"


class PredictionService:
    """Predict and RawPredict through the deployed models' servers."""

    def __init__(
        self,
        state: EmulatorState,
        endpoints: EndpointService,
        models: ModelService,
        runtime: ModelRuntime,
    ) -> None:
        self.state = state
        self.endpoints = endpoints
        self.models = models
        self.runtime = runtime

    def handler(self, router: RpcRouter) -> grpc.GenericRpcHandler:
        """The gRPC handler of this service."""
        return router.service(
            SERVICE,
            {
                "Predict": proto_plus(ps.PredictRequest, ps.PredictResponse, self.predict),
                "RawPredict": (
                    self.raw_predict,
                    ps.RawPredictRequest.deserialize,
                    lambda body: body.SerializeToString(),
                ),
            },
        )

    def _route(self, endpoint_name: str) -> tuple[Any, Any, ModelServer]:
        """Pick a deployed model by the traffic split; returns (endpoint, deployed, server)."""
        with self.state.lock:
            endpoint = self.endpoints.find(endpoint_name, "endpoint")
            if not endpoint.deployed_models:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Endpoint {endpoint.name} does not have any deployed model.",
                )
            weights = [(d, endpoint.traffic_split.get(d.id, 0)) for d in endpoint.deployed_models]
            live = [(d, w) for d, w in weights if w > 0]
            if not live:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Endpoint {endpoint.name} sends no traffic to any deployed model.",
                )
            deployed = random.choices([d for d, _ in live], weights=[w for _, w in live])[0]
            name = endpoint.name
        server = self.state.workers.server(server_key(name, deployed.id))
        if server is None:
            raise ApiError(
                grpc.StatusCode.UNAVAILABLE,
                f"The server of deployed model {deployed.id} on {name} is not running.",
            )
        return endpoint, deployed, server

    def _call(self, server: ModelServer, body: bytes, content_type: str) -> bytes:
        try:
            status, answer = server.predict(body, content_type)
        except ModelServerError as exc:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
        if status >= 500:
            raise ApiError(grpc.StatusCode.INTERNAL, _message(answer, status))
        if status >= 400:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, _message(answer, status))
        return answer

    def predict(self, request: ps.PredictRequest) -> ps.PredictResponse:
        """Predict ``instances`` with the deployed model the traffic split picks."""
        if not request.instances:
            raise invalid("instances", "instances must not be empty.")
        _, deployed, server = self._route(request.endpoint)
        pb = ps.PredictRequest.pb(request)
        payload: dict[str, Any] = {
            "instances": [json_format.MessageToDict(v) for v in pb.instances]
        }
        if pb.HasField("parameters"):
            payload["parameters"] = json_format.MessageToDict(pb.parameters)
        answer = self._call(server, json.dumps(payload).encode(), "application/json")
        try:
            predictions = json.loads(answer)["predictions"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError(
                grpc.StatusCode.INTERNAL, f"The model server's answer has no predictions: {exc}"
            ) from exc
        response = ps.PredictResponse(
            deployed_model_id=deployed.id,
            model=deployed.model,
            model_version_id=deployed.model_version_id,
            model_display_name=deployed.display_name,
        )
        values = []
        for prediction in predictions:
            value = struct_pb2.Value()
            json_format.ParseDict(prediction, value)
            values.append(value)
        ps.PredictResponse.pb(response).predictions.extend(values)
        return response

    def raw_predict(self, request: ps.RawPredictRequest) -> httpbody_pb2.HttpBody:
        """Send the HTTP body as it is to the model server; answer its body as it is."""
        body = request.http_body
        _, _, server = self._route(request.endpoint)
        answer = self._call(server, bytes(body.data), body.content_type or "application/json")
        return httpbody_pb2.HttpBody(content_type="application/json", data=answer)


def _message(answer: bytes, status: int) -> str:
    try:
        data = json.loads(answer)
        if isinstance(data, dict) and "error" in data:
            return f"The model answered {status}: {data['error']}"
    except ValueError:
        pass
    return f"The model answered {status}: {answer[:500].decode(errors='replace')}"
