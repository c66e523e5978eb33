"""jitad.formats.spreadsheet: CSV cells a spreadsheet would run as formulas are written as text."""
import csv
import io

from jitad.formats.spreadsheet import csv_text, safe_cell


def test_a_cell_starting_like_a_formula_gets_an_apostrophe_and_others_are_untouched():
    for text in ("=1+1", "+49 30", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text) == "'" + text
    for text in ("plain", "C:\\Windows\\cmd.exe", "", "a=b"):
        assert safe_cell(text) == text


def test_csv_text_keeps_numbers_as_numbers_and_protects_text():
    body = csv_text(["n", "text", "flag", "none"], [[-3, "-3", True, None], [2.5, "=cmd|' /C calc'!A0", False, ""]])
    assert body.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows == [["n", "text", "flag", "none"], ["-3", "'-3", "yes", ""], ["2.5", "'=cmd|' /C calc'!A0", "no", ""]]
