import pytest

from t2iscale.errors import UserError
from t2iscale.train.config import apply_overrides, load_config, parse_override, validate_config


def test_defaults_are_the_papers_recipe():
    config = validate_config({"run_dir": "r", "budget": {"total_steps": 1}, "data": {"size": 10}})
    recipe = config.recipe
    assert (recipe.lr, recipe.warmup_steps, recipe.global_batch) == (8e-5, 10_000, 2048)
    assert (recipe.objective, recipe.caption_dropout) == ("ddpm-eps", 0.1)
    assert (config.eval.sampler_steps, config.eval.guidance, config.eval.use_ema) == (50, 7.5, False)


def test_unknown_key_is_an_error_that_names_it():
    with pytest.raises(UserError, match=r"recipe\.learning_rate: unknown key"):
        validate_config(
            {
                "run_dir": "r",
                "budget": {"total_steps": 1},
                "data": {"size": 1},
                "recipe": {"learning_rate": 1},
            }
        )


def test_bad_value_names_the_key():
    with pytest.raises(UserError, match=r"data\.caption_policy"):
        validate_config(
            {"run_dir": "r", "budget": {"total_steps": 1}, "data": {"size": 1, "caption_policy": "x"}}
        )


def test_overrides_parse_json_values_and_nest():
    assert parse_override("recipe.lr=1e-4") == (["recipe", "lr"], 1e-4)
    assert parse_override("model.backbone=sdxl-c16") == (["model", "backbone"], "sdxl-c16")
    raw = apply_overrides({"recipe": {"lr": 1}}, ["recipe.lr=2", "budget.total_steps=3", "eval.seeds=[1,2]"])
    assert raw == {"recipe": {"lr": 2}, "budget": {"total_steps": 3}, "eval": {"seeds": [1, 2]}}
    with pytest.raises(UserError, match="key=value"):
        parse_override("recipe.lr")


def test_toml_and_json_files_load_and_report_their_errors(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('run_dir = "r"\n[budget]\ntotal_steps = 5\n[data]\nsize = 9\n')
    assert load_config(toml, ["recipe.lr=0.5"]).recipe.lr == 0.5
    broken = tmp_path / "run.json"
    broken.write_text('{"run_dir": "r",\n "budget": }')
    with pytest.raises(UserError, match=r"run\.json: line 2"):
        load_config(broken)
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_a_text_length_that_cuts_the_worlds_captions_warns():
    from t2iscale.train.components import shapes_texts, warn_if_truncated

    texts = shapes_texts("tiny", sample_images=200)
    with pytest.warns(UserWarning, match=r"text\.max_length=8 truncates \d+% of this world's captions"):
        warn_if_truncated(texts, 8)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_truncated(texts, 32)  # the default fits the tiny world's longest caption
