"""mtl_lib: multi-task learning for NLP with a shared transformer encoder.

The public API is re-exported here; everything else is internal. Start with
``notebooks/00_tour.ipynb`` or ``make demo``.
"""

from .baselines import TfidfSGDBaseline
from .checkpoint import CheckpointError
from .checkpoint_io import load_model, save_model
from .data import DataFormatError, data_root
from .db_linear import DB_Linear
from .encoders import (
    DEFAULT_ENCODER,
    Encoder,
    EncoderNotAvailable,
    list_encoders,
    load_encoder,
    tiny_encoder,
)
from .evaluation import evaluate
from .experiment import build_experiment, snips_tasks
from .heads import make_head
from .hierarchical_metrics import hierarchical_metrics, per_level_report
from .hierarchy import PerLevelHierarchy
from .history import History
from .losses import CrossEntropyLoss, MultiLabelLoss, NERLoss, WeightedNLLLoss
from .metrics import (
    classification_accuracy,
    classification_f1_score,
    classification_recall_score,
    confusion_matrix,
    per_class_report,
    seqeval_f1_score,
    seqeval_precision,
    seqeval_recall,
    snips_f1_score,
    snips_precision,
    snips_recall,
)
from .model import MultiTaskModel
from .predict import Predictor
from .task_data import build_groups
from .tasks import TaskFileError, TaskSpec, load_task_file
from .trainer import Trainer, TrainerConfig, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENCODER", "DB_Linear", "PerLevelHierarchy", "TfidfSGDBaseline", "hierarchical_metrics",
    "per_level_report", "CheckpointError", "CrossEntropyLoss", "DataFormatError", "Encoder",
    "EncoderNotAvailable", "History", "MultiLabelLoss", "MultiTaskModel", "NERLoss", "Predictor",
    "TaskFileError", "TaskSpec", "Trainer", "TrainerConfig", "TrainingDiverged", "WeightedNLLLoss",
    "build_experiment", "build_groups", "classification_accuracy", "classification_f1_score",
    "classification_recall_score", "confusion_matrix", "data_root", "evaluate", "list_encoders",
    "load_encoder", "load_model", "load_task_file", "make_head", "per_class_report", "save_model",
    "seqeval_f1_score", "seqeval_precision", "seqeval_recall", "snips_f1_score", "snips_precision",
    "snips_recall", "snips_tasks", "tiny_encoder",
]
