"""`rlhf serve`: a trained policy behind an OpenAI-compatible chat-completions API.

    schemas.py   request validation (pydantic) and OpenAI-style JSON errors; no torch
    model.py     ChatModel: messages -> chat template -> token-by-token sampling on the rollout
                 engine's KV-cache decoder, with stop strings, log-probs and top log-probs
    app.py       the FastAPI app: POST /v1/chat/completions (streaming too), GET /v1/models
    cli.py       the command line, uvicorn

Any OpenAI client works against it (``base_url="http://127.0.0.1:8000/v1"``), and so does
``rlhf judge judge.kind=endpoint``.
"""
