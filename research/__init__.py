"""One-off studies, apart from the product (big_vision's `proj/` fashion).

Each folder answers one question with its code, its results and a README.md
(the question, the command, the finding); `python -m research.<study>` runs it.
They import fer; fer never imports them.
"""
