"""The MLflow model of a trained classifier: image files in (base64), class probabilities out.

MLflow logs this file itself ("models from code") with the project's package and the
checkpoint, which loads with weights_only=True: the model store holds no pickled objects.
`mlflow models serve` runs it through the same code as `reprovision predict`
(reprovision.prediction), as it was when the model was trained.
"""

from __future__ import annotations

import base64
import binascii

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class ImageFileClassifier(PythonModel):
    def load_context(self, context) -> None:
        from reprovision.models.classifier import load_classifier

        self.module = load_classifier(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One row per image: `predicted`, `confidence`, and `p_<class>` for every class."""
        from reprovision.errors import BadInput
        from reprovision.prediction import class_probabilities, probability_frame

        images = []
        for i, text in enumerate(model_input["image"]):
            try:
                images.append(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                raise BadInput(f"row {i}: `image` is not base64; send the image file's bytes base64-encoded") from None
        names = [f"row {i}" for i in range(len(images))]
        return probability_frame(class_probabilities(self.module, images, names), self.module.hparams.classes)


mlflow.models.set_model(ImageFileClassifier())
