"""The public surface is deliberate: adding or removing a name must change this test too."""

import foretell


def test_public_names_are_pinned_and_sorted():
    assert foretell.__all__ == sorted(foretell.__all__)
    assert foretell.__all__ == [
        "ArtifactIntegrityError",
        "Columns",
        "Feature",
        "ForetellError",
        "Frame",
        "InvalidInput",
        "InvalidModelURI",
        "MissingExtra",
        "Model",
        "ModelInfo",
        "ModelNotFound",
        "Output",
        "PredictionError",
        "Predictions",
        "PredictorChoice",
        "Signature",
        "__version__",
        "batch_job",
        "batch_jobs",
        "compile_model",
        "delete_version",
        "demo_init",
        "errors",
        "get_registry",
        "list_models",
        "list_versions",
        "load",
        "read_input",
        "register",
        "resume_batch",
        "run_batch",
        "set_alias",
        "show",
    ]
    for name in foretell.__all__:
        assert hasattr(foretell, name), name


def test_errors_inherit_the_builtin_a_user_would_catch():
    assert issubclass(foretell.InvalidInput, ValueError)
    assert issubclass(foretell.ModelNotFound, LookupError)
    assert issubclass(foretell.MissingExtra, ImportError)
    assert issubclass(foretell.PredictionError, RuntimeError)
    for name in foretell.errors.__all__:
        cls = getattr(foretell.errors, name)
        if isinstance(cls, type) and issubclass(cls, Exception):
            assert issubclass(cls, foretell.ForetellError), name
