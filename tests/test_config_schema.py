"""The config and rules schemas: one-line errors naming the key path, published JSON Schemas that are current
and agree with the loaders, defaults that are the ones the code uses."""

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

from crm.config import ProjectConfig, load_config
from crm.config_schema import ConfigFile, json_schema_text, reference_markdown
from crm.outcomes import DealColumns, EventColumns
from features.timing import duration_days
from features.vocabulary import EventVocabulary
from models.rules import RulesError, load_rules
from models.rules_schema import RulesFile
from train import main as training_main
from training.pipeline import TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {"project-config.schema.json": [], "points-rules.schema.json": ["--rules"]}
BASE = '[data]\nleads = "leads.csv"\n[columns]\nid = "id"\nlabel = "won"\n'


def _config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("extra, message", [
    ('[training]\nmin_positives = "40"\n',
     r"config.toml: \[training\] min_positives must be a whole number. Got '40' instead.$"),
    ('[trainig]\nseed = 1\n', r"config.toml: \[trainig\] is an unknown section; expected one of \['columns', 'data', "
                              r"'deals', 'events', 'leakage', 'roles', 'runtime', 'tiers', 'training'\].$"),
    ('[tiers]\nkind = "fastest"\n', r"\[tiers\] kind must be 'capacity', 'precision', 'threshold', 'lift' or "
                                    r"'expected_value'. Got 'fastest' instead."),
    ('[roles]\ncategorical = "industry"\n', r"\[roles\] categorical must be a list. Got 'industry' instead."),
    ('[leakage]\nmax_auc = 1.5\n', r"\[leakage\] max_auc must be less than or equal to 1. Got 1.5 instead."),
    # Two mistakes, one line: each with its own key path.
    ('[runtime]\nthreads = 0\n[training]\nsplit_shares = [0.5, 0.5]\n',
     r"\[training\] split_shares must have at least 3 item\(s\)\. Got \[0.5, 0.5\] instead; "
     r"\[runtime\] threads must be greater than or equal to 1. Got 0 instead.$"),
    # A value that fits no branch of a union is one mistake, not one per branch.
    ('[deals]\nfile = "d.csv"\nwon = [{ a = 1 }]\n', r"\[deals\] won\[1\] must be text. Got \{'a': 1\} instead.$"),
])
def test_config_mistakes_are_one_line_naming_the_key_path(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message) as caught:
        load_config(_config(tmp_path, BASE + extra))
    assert "\n" not in str(caught.value)


def test_mistakes_across_keys_name_the_file_too(tmp_path):
    with pytest.raises(ValueError, match=r"config.toml: Column 'industry' has two roles in the config: categorical "
                                         r"and numeric. Give it one.$"):
        load_config(_config(tmp_path, BASE + '[roles]\ncategorical = ["industry"]\nnumeric = ["industry"]\n'))
    with pytest.raises(ValueError, match=r"config.toml: A deals table needs a \[columns\] created_at column"):
        load_config(_config(tmp_path, BASE.replace('label = "won"\n', "") + '[deals]\nfile = "deals.csv"\n'))


def test_rules_mistakes_name_the_rule_and_key(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[thresholds]\nmql = 10\nsql = 20\n[[behaviour]]\nname = "demo"\nevent = "demo_request"\n'
                    'points = 5\ncap = -1\nrange = [1, "lots"]\n')
    with pytest.raises(RulesError, match=r"rules.toml: behaviour rule 1 \('demo'\): cap must be greater than 0. "
                                         r"Got -1 instead; behaviour rule 1 \('demo'\): range\[2\] must be a number. "
                                         r"Got 'lots' instead.$"):
        load_rules(path)
    path.write_text('[thresholds]\nmql = 10\n')
    with pytest.raises(RulesError, match=r"rules.toml: \[thresholds\] sql is required.$"):
        load_rules(path)


@pytest.mark.parametrize("name, arguments", SCHEMAS.items())
def test_published_schemas_are_current_and_printed_by_the_command(name, arguments, capsys):
    assert training_main(["config-schema", *arguments]) == 0
    printed = capsys.readouterr().out
    assert printed == (ROOT / "docs" / "data-scientist" / name).read_text(), (
        f"docs/data-scientist/{name} is stale: regenerate it with `lead-train config-schema {' '.join(arguments)}"
        f" > docs/data-scientist/{name}`")
    assert printed == json_schema_text(RulesFile if arguments else ConfigFile)
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


def test_the_json_schema_accepts_and_refuses_what_load_config_does(tmp_path):
    schema = json.loads((ROOT / "docs" / "data-scientist" / "project-config.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((ROOT / "examples").glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        if "thresholds" in raw:  # a rules file
            continue
        load_config(path)
        assert not list(validator.iter_errors(raw)), path
    init_config = tmp_path / "init.toml"
    (tmp_path / "leads.csv").write_text("id,created,industry,visits,won\n1,2026-01-01,retail,3,yes\n"
                                        "2,2026-01-02,banking,0,no\n3,2026-01-03,retail,7,yes\n")
    assert training_main(["init-config", "--leads", str(tmp_path / "leads.csv"), "--out", str(init_config)]) == 0
    load_config(init_config)
    assert not list(validator.iter_errors(tomllib.loads(init_config.read_text())))
    for text in (BASE + 'colour = "red"\n', BASE + '[training]\nseed = "0"\n',
                 BASE + '[events]\nfile = "e.csv"\nwindows = ["soon"]\n', BASE + '[runtime]\nthreads = 0\n',
                 BASE + '[tiers]\nkind = "fastest"\n'):
        with pytest.raises(ValueError):
            load_config(_config(tmp_path, text))
        assert list(validator.iter_errors(tomllib.loads(text))), text


def test_the_rules_json_schema_accepts_the_shipped_rules_and_refuses_a_bad_one():
    validator = jsonschema.Draft202012Validator(
        json.loads((ROOT / "docs" / "data-scientist" / "points-rules.schema.json").read_text()))
    shipped = [ROOT / "models" / "rules_example.toml", *sorted((ROOT / "examples").glob("*rules*.toml"))]
    assert len(shipped) >= 2
    for path in shipped:
        assert not list(validator.iter_errors(tomllib.loads(path.read_text()))), path
    bad = {"thresholds": {"mql": 10, "sql": 20}, "attribute": [{"column": "industry", "points": 5, "weight": 2}]}
    assert list(validator.iter_errors(bad))


def test_schema_defaults_are_the_ones_the_code_uses():
    defaults = ConfigFile.model_fields
    training, project = TrainingConfig(), ProjectConfig(leads="x.csv", id="id", label="won")
    section = {name: field.default for name, field in defaults["training"].default.model_fields.items()}
    for key, field_name in (("horizon", "horizon_days"), ("snapshot_every", "snapshot_every_days"),
                            ("test_span", "test_days"), ("calibration_span", "calibration_days")):
        assert duration_days(section[key]) == getattr(training, field_name), key
    for key in ("min_positives", "min_negatives", "min_split_positives", "min_converted_leads",
                "min_split_converted_leads", "min_validation_auc", "seed", "search_seconds"):
        assert section[key] == getattr(training, key), key
    assert tuple(section["split_shares"]) == training.lead_shares
    assert tuple(section["per_lead_candidates"]) == training.per_lead_candidates
    columns = defaults["columns"].default
    for key in ("positive", "negative", "missing_values"):
        assert tuple(getattr(columns, key)) == getattr(project, key), key
    leakage = defaults["leakage"].default
    assert (leakage.max_auc, leakage.suspicious_auc) == (project.max_auc, project.suspicious_auc)
    assert defaults["data"].annotation.model_fields["encoding"].default == project.encoding
    events = defaults["events"].annotation.__args__[0].model_fields
    contract = EventColumns()
    assert (events["id"].default, events["timestamp"].default, events["type"].default,
            events["type_separator"].default) == (contract.id, contract.timestamp, contract.type[0],
                                                   contract.type_separator)
    vocabulary = EventVocabulary()
    assert (events["max_types"].default, events["min_count"].default, events["min_share"].default) == (
        vocabulary.max_types, vocabulary.min_count, vocabulary.min_share)
    deals, deal_contract = defaults["deals"].annotation.__args__[0].model_fields, DealColumns()
    assert (deals["id"].default, deals["closed_at"].default, deals["outcome"].default, tuple(deals["won"].default),
            tuple(deals["lost"].default)) == (deal_contract.id, deal_contract.closed_at, deal_contract.outcome,
                                              deal_contract.won, deal_contract.lost)


def test_the_config_reference_page_holds_the_current_tables():
    page = (ROOT / "docs" / "data-scientist" / "config-reference.md").read_text()
    blocks = re.findall(r"<!-- generated: lead-train (config-schema[^>]*) -->\n(.*?)<!-- end generated -->", page,
                        flags=re.S)
    assert [command for command, _ in blocks] == ["config-schema --markdown", "config-schema --rules --markdown"]
    for (command, block), model in zip(blocks, (ConfigFile, RulesFile)):
        assert block == reference_markdown(model), f"regenerate the tables with `lead-train {command}`"
    for section in ("[data]", "[columns]", "[roles]", "[leakage]", "[training]", "[events]", "[deals]", "[tiers]",
                    "[runtime]", "[thresholds]", "[[attribute]]", "[[behaviour]]"):
        assert f"### {section}\n" in page, section
    assert "| `horizon` | text or number | `\"90d\"` |" in page
