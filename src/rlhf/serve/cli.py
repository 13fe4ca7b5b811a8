"""`rlhf serve`: serve a trained policy over an OpenAI-compatible API.

    rlhf serve --model runs/ppo/final --host 127.0.0.1 --port 8000 [--api-key KEY]

then, from any OpenAI client: ``OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=KEY)``.
The key may also come from ``$RLHF_SERVE_API_KEY``; without one the server is open to whoever
can reach it, so it listens on loopback unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys

# Only the standard library up front: `rlhf --help` builds this parser.


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve a policy over an OpenAI-compatible chat-completions API",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="Hugging Face model directory (or hub id) to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--served-model-name", default=None, help="name clients pass as 'model' (default: the directory name)"
    )
    p.add_argument(
        "--api-key", default=None, help="require 'Authorization: Bearer KEY' (default $RLHF_SERVE_API_KEY)"
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    p.add_argument(
        "--prompt-format",
        default="auto",
        choices=["auto", "chat", "raw"],
        help="chat: the tokenizer's chat template; raw: message contents joined as they are (a model "
        "trained on plain prompts); auto: chat if the tokenizer has a template",
    )
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger request bodies get 413")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from rlhf.serve.app import create_app
    from rlhf.serve.model import load_chat_model

    chat_model = load_chat_model(
        args.model, args.served_model_name, args.dtype, args.device, args.prompt_format
    )
    key = args.api_key or os.environ.get("RLHF_SERVE_API_KEY") or None
    app = create_app(chat_model, key, args.max_body_bytes)
    print(
        f"rlhf serve: {chat_model.name!r} ({chat_model.decoder.name} decoder, "
        f"{'chat template' if chat_model.chat else 'raw prompts'}) at http://{args.host}:{args.port}/v1"
        + ("" if key else " (no API key: anyone who can reach it may use it)"),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0
