"""Detection as the task: the split detector adapter, the detection task, COCO mAP on fixtures with known answers."""

from __future__ import annotations

import pytest
import torch

from privbench.errors import PrivbenchError
from privbench.registry import METRICS, MODELS
from privbench.tasks import DetectionTargets, get_task

SHAPE = (3, 96, 96)


def _detector(name: str = "detector-small", split: str = "block1", **params):
    import privbench.models  # noqa: F401  (registrations)

    spec = MODELS.create(name, **params)
    torch.manual_seed(0)
    network = spec.build(3, SHAPE).eval()
    return network, spec.split_model(network, split, 3, SHAPE)


def _assert_same_detections(reference, got):
    assert len(reference) == len(got)
    for a, b in zip(reference, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key])


@pytest.mark.parametrize(("name", "split"), [("detector-small", "stem"), ("detector-small", "block1"),
                                             ("detector-small", "block3"),
                                             ("fasterrcnn_mobilenet_v3_large_fpn", "body.6")])
def test_front_then_back_equals_the_unsplit_detector(name, split):
    network, model = _detector(name, split)
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = network(list(x))
    assert sum(len(d["boxes"]) for d in reference) > 0  # an untrained detector still proposes boxes
    _assert_same_detections(reference, model.predict(x, batch_size=2))
    # what crosses the network is one tensor, and the back alone finishes the job from it
    z = model.front(x)
    assert isinstance(z, torch.Tensor) and tuple(z.shape[1:]) == model.feature_shape()
    with torch.no_grad():
        _assert_same_detections(reference, model.task.predictions(model.back(z)))


def test_detector_losses_train_through_a_frozen_backbone():
    """The task loss is the detector's own (RPN + RoI head losses), computed with the network in eval mode (frozen
    BatchNorm) and differentiable w.r.t. what crosses the network — what a defense trains through."""
    _, model = _detector()
    model.eval()
    targets = DetectionTargets([torch.tensor([[10.0, 10.0, 40.0, 80.0]]), torch.zeros(0, 4)],
                               [torch.tensor([1]), torch.zeros(0, dtype=torch.int64)])
    z = model.front(torch.rand(2, *SHAPE)).detach().requires_grad_(True)
    outputs = model.back(z)
    losses = outputs.losses(targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    loss = model.task_loss(outputs, targets)
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert not model.back.rpn.training and not model.back.roi_heads.training  # the heads' mode is restored
    bn = next(m for m in model.front.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not bn.training


def test_cuts_after_an_fpn_input_are_refused_with_the_valid_range():
    import privbench.models  # noqa: F401

    spec = MODELS.create("fasterrcnn_mobilenet_v3_large_fpn")
    network = spec.build(3, SHAPE)
    assert spec.available_splits(3, SHAPE)[-1] == "body.13"
    with pytest.raises(PrivbenchError, match="more than one tensor would cross.*body.13"):
        spec.split_model(network, "body.14", 3, SHAPE)
    with pytest.raises(PrivbenchError, match="unknown split 'layer9'"):
        spec.split_model(network, "layer9", 3, SHAPE)


def test_detection_weights_of_another_architecture_are_refused(tmp_path):
    import privbench.models  # noqa: F401

    small = MODELS.create("detector-small").build(3, SHAPE)
    path = tmp_path / "small.pt"
    torch.save(small.state_dict(), path)
    # the same file loads into its own architecture, as given
    same = MODELS.create("detector-small", weights=str(path)).build(3, SHAPE)
    torch.testing.assert_close(same.state_dict(), small.state_dict())
    with pytest.raises(PrivbenchError, match=r"small\.pt do not fit fasterrcnn_mobilenet.*another architecture"):
        MODELS.create("fasterrcnn_mobilenet_v3_large_fpn", weights=str(path)).build(3, SHAPE)
    with pytest.raises(PrivbenchError, match=r"small\.pt .*shape"):  # same architecture, other number of classes
        MODELS.create("detector-small", weights=str(path)).build(5, SHAPE)


def test_detection_targets_index_and_validate():
    targets = DetectionTargets([torch.tensor([[0.0, 0, 4, 4]]), torch.zeros(0, 4), torch.tensor([[1.0, 1, 2, 3]])],
                               [torch.tensor([1]), torch.zeros(0, dtype=torch.int64), torch.tensor([2])])
    picked = targets[torch.tensor([2, 0])]
    assert len(picked) == 2 and picked.classes[0].tolist() == [2]
    assert len(targets[1:]) == 2
    with pytest.raises(PrivbenchError, match="zero or negative size"):
        DetectionTargets([torch.tensor([[4.0, 4, 4, 8]])], [torch.tensor([1])])
    with pytest.raises(PrivbenchError, match="shape"):
        DetectionTargets([torch.tensor([[4.0, 4, 8]])], [torch.tensor([1])])


# ---- mAP on fixtures whose answer is known -----------------------------------------------------------------
def _targets():
    return DetectionTargets([torch.tensor([[10.0, 10, 50, 50], [60, 60, 90, 90]])], [torch.tensor([1, 1])])


def _score(name: str, predictions, targets, **params):
    import privbench.metrics  # noqa: F401
    from privbench.metrics.base import UtilityInputs

    metric = METRICS.create(name, **params)
    return metric.score(UtilityInputs(predictions, targets, ["background", "person", "car"]), None).value


def _found(boxes, scores, labels):
    return [{"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
             "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}]


def test_map_is_one_for_perfect_predictions():
    perfect = _found([[10, 10, 50, 50], [60, 60, 90, 90]], [0.9, 0.8], [1, 1])
    for metric in ("map50", "map"):
        assert _score(metric, perfect, _targets()) == pytest.approx(1.0)
    assert _score("ap", perfect, _targets(), **{"class": "person"}) == pytest.approx(1.0)


def test_map_is_zero_without_detections_or_with_the_wrong_class():
    nothing = _found([], [], [])
    assert _score("map50", nothing, _targets()) == 0.0
    assert _score("map", nothing, _targets()) == 0.0
    wrong_class = _found([[10, 10, 50, 50], [60, 60, 90, 90]], [0.9, 0.8], [2, 2])
    assert _score("map50", wrong_class, _targets()) == 0.0


def test_map_of_one_of_two_boxes_is_the_hand_computed_value():
    """One of two ground-truth boxes found, at precision 1: recall reaches 0.5, so COCO's 101-point interpolated
    precision is 1 at recall 0, 0.01, …, 0.50 (51 points) and 0 above: AP = 51/101 at every IoU threshold."""
    half = _found([[10, 10, 50, 50]], [0.9], [1])
    assert _score("map50", half, _targets()) == pytest.approx(51 / 101)
    assert _score("map", half, _targets()) == pytest.approx(51 / 101)
    # a box overlapping its object with IoU 750/900 = 0.83 is a hit at COCO's thresholds 0.50 … 0.80 (7 of 10) and
    # a miss above, where only the other box is found (AP 51/101)
    shifted = _found([[10, 10, 50, 50], [60, 60, 90, 85]], [0.9, 0.8], [1, 1])
    assert _score("map50", shifted, _targets()) == pytest.approx(1.0)
    assert _score("map", shifted, _targets()) == pytest.approx((7 * 1.0 + 3 * 51 / 101) / 10)


def test_class_ap_names_its_class_and_refuses_unknown_ones():
    import privbench.metrics  # noqa: F401

    assert METRICS.create("ap", **{"class": "car", "iou": "0.5"}).label == "ap50-car"
    assert METRICS.create("ap", **{"class": "person"}).label == "ap-person"
    with pytest.raises(PrivbenchError, match="unknown class 'bus'.*person, car"):
        _score("ap", _found([], [], []), _targets(), **{"class": "bus"})
    with pytest.raises(PrivbenchError, match="no 'car' box"):
        _score("ap", _found([], [], []), _targets(), **{"class": "car"})


def test_map_refuses_nan_detections():
    bad = _found([[float("nan"), 10, 50, 50]], [0.9], [1])
    with pytest.raises(PrivbenchError, match="NaN"):
        _score("map50", bad, _targets())


def test_detection_task_sanity_flags_a_useless_detector():
    task = get_task("detection")
    assert task.sanity(_found([], [], []), _targets(), 0.95, 3).useless
    assert not task.sanity(_found([[10, 10, 50, 50]], [0.9], [1]), _targets(), 0.95, 3).useless
