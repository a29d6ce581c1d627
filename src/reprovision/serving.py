"""The MLflow model of a trained model: a frame of raw inputs in, the model's answers out.

What a request holds depends on what the model was trained on (its `inputs.kind`): an `image`
column of image files (base64), a `text` column of documents, or one column per table feature (raw
values, by name; other columns are ignored). A classifier answers `predicted` (the class),
`confidence` and `p_<class>` for every class; a regression model answers `predicted` (the value).

MLflow logs this file itself ("models from code") with the project's package and the checkpoint,
which loads with weights_only=True: the model store holds no pickled objects. `mlflow models serve`
runs it through the same code as `reprovision predict` (reprovision.prediction), as it was when the
model was trained.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from reprovision import numerics

# MLflow's server has loaded numpy, not yet torch (load_context imports it): torch's kernels and
# threads are pinned as `reprovision predict` pins them by default.
numerics.pin(numerics.Numerics())


class ServedModel(PythonModel):
    def load_context(self, context) -> None:
        from reprovision.models.predictor import load_predictor

        self.module = load_predictor(context.artifacts["checkpoint"])
        numerics.settle()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One row of answers per input row (see the module's docstring); a bad row is a one-line
        error naming it."""
        from reprovision.prediction import predict_frame

        return predict_frame(self.module, model_input)


mlflow.models.set_model(ServedModel())
