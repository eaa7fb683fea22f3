import numpy as np
import pandas as pd
import pytest
from own_export import make_export, write_quirky_csv

from crm.readers import detect_delimiter, parse_numbers, read_table
from features.contract import DataContractError


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_quirky_csv_reads_like_the_frame(tmp_path, delimiter):
    frame = make_export(30)
    path = tmp_path / "export.csv"
    write_quirky_csv(frame, path, delimiter=delimiter)
    read = read_table(path)
    assert list(read.columns) == list(frame.columns)  # BOM gone, trailing empty column dropped
    assert read["Visits"].dtype == float  # "1,234.00" -> 1234.0
    np.testing.assert_array_equal(read["Visits"], frame["Visits"])
    assert read["Source"].tolist() == frame["Source"].tolist()  # no "\r" left by CRLF
    assert read["Phone"].tolist() == frame["Phone"].tolist()


def test_quoted_delimiter_inside_a_field(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text('id,city,amount\n1,"Paris, France","1,500.50"\n2,Oslo,20\n')
    read = read_table(path)
    assert read["city"].tolist() == ["Paris, France", "Oslo"]
    assert read["amount"].tolist() == [1500.5, 20.0]


def test_delimiter_detection_prefers_consistent_splits():
    assert detect_delimiter("a;b;c\n1;2,5;3\n4;5;6\n") == ";"
    assert detect_delimiter("a\tb\n1\t2\n") == "\t"
    assert detect_delimiter("single\ncolumn\n") == ","


def test_parquet_and_unknown_suffix(tmp_path):
    make_export(10).to_parquet(tmp_path / "export.parquet")
    assert len(read_table(tmp_path / "export.parquet")) == 10
    (tmp_path / "export.xlsx").write_text("x")
    with pytest.raises(DataContractError, match=r"expected a \.csv or \.parquet file"):
        read_table(tmp_path / "export.xlsx")


def test_numbers_with_placeholders_and_separators_are_parsed():
    values = pd.Series(["1,234", "Select", None, "7", " 12.5 "], name="Visits")
    parsed = parse_numbers(values, source="export.csv", column="Visits", missing_tokens=("select",))
    np.testing.assert_array_equal(parsed, [1234.0, np.nan, np.nan, 7.0, 12.5])


def test_text_in_a_numeric_column_is_reported_not_silenced():
    values = pd.Series(["12", "1.234,5", "lots"], name="Visits")
    with pytest.raises(DataContractError, match=r"(?s)export.csv: column 'Visits' must hold numbers.*'lots'"):
        parse_numbers(values, source="export.csv", column="Visits")


def test_non_utf8_file_is_reported(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("id,city\n1,M\xfcnchen\n".encode("latin-1"))
    with pytest.raises(DataContractError, match="Save the export as UTF-8"):
        read_table(path)


def test_decimal_comma_exports(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text('id;amount;rate\n1;"1.234,5";0,25\n2;12;1,5\n')
    read = read_table(path, decimal=",")
    assert read["amount"].tolist() == [1234.5, 12.0] and read["rate"].tolist() == [0.25, 1.5]
    # Without a config the file's own values show the decimal comma: read the same.
    detected = read_table(path)
    assert detected["amount"].tolist() == [1234.5, 12.0] and detected["rate"].tolist() == [0.25, 1.5]
    assert detected.attrs["decimal"] == ","
    # Told the other convention, the values are refused, not misread.
    with pytest.raises(DataContractError, match=r"numbers with '\.' as decimal mark.*set \[data\] decimal"):
        parse_numbers(pd.Series(["0,25", "1,5"]), source="export.csv", column="rate", decimal=".")
