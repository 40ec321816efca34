"""Notes: a list and a form that adds one, stored in the instance folder (kept across releases)."""

from __future__ import annotations

import fcntl
from pathlib import Path

import click
from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length

bp = Blueprint("notes", __name__)


class NoteForm(FlaskForm):
    text = StringField("Note", validators=[DataRequired(), Length(max=200)])


def _notes_file() -> Path:
    return Path(current_app.config["NOTES_FILE"])


def read_notes() -> list[str]:
    try:
        return _notes_file().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


@bp.route("/", methods=["GET", "POST"])
def index() -> str | Response:
    form = NoteForm()
    if form.validate_on_submit():
        with _notes_file().open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(form.text.data.replace("\n", " ") + "\n")
        current_app.logger.info("note added")
        return redirect(url_for("notes.index"))
    return render_template("index.html", form=form, notes=read_notes())


@click.command("init-db")
def init_db() -> None:
    """Create the notes file if it does not exist (safe to run on every release)."""
    path = _notes_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    click.echo(f"notes file ready: {path}")
