"""A scikit-learn training script as Vertex AI runs it: the model goes to AIP_MODEL_DIR."""

import os

import joblib
from google.cloud import storage
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

features, labels = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000).fit(features, labels)
joblib.dump(model, "model.joblib")
bucket, _, prefix = os.environ["AIP_MODEL_DIR"][len("gs://") :].partition("/")
storage.Client().bucket(bucket).blob(prefix + "model.joblib").upload_from_filename("model.joblib")
print("trained; wrote", os.environ["AIP_MODEL_DIR"] + "model.joblib")
