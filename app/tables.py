"""Read-only row tables, as the review, training and active-learning windows list things."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QTableWidget, QTableWidgetItem


def readonly_table(columns: Sequence[str]) -> QTableWidget:
    """An empty table with these headers that selects whole rows and cannot be edited."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)  # no blank band right of the columns
    return table


def set_row(table: QTableWidget, row: int, values: Sequence[str]) -> None:
    """Put one row's texts into the table's cells, left to right."""
    for col, value in enumerate(values):
        table.setItem(row, col, QTableWidgetItem(value))
