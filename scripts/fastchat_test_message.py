"""Send one test message through a FastChat cluster, as `python -m fastchat.serve.test_message`
does, without torch: that module picks the conversation template with
`fastchat.model.model_adapter`, which imports torch and transformers. Here the template is the
one the worker itself serves (`/worker_get_conv_template`, what FastChat's OpenAI server uses),
or a named one (`--conv-template`).

Run it with the Python of `scripts/fastchat.sh DEST`:
  LOGDIR= DEST/bin/python scripts/fastchat_test_message.py --model-name NAME \
      [--controller-address http://localhost:21001 | --worker-address URL]

Prints the models, the worker, then `ROLE: message` and the streamed reply, like test_message.
Exits 1 when no worker serves the model or a chunk carries a non-zero error_code.
"""

import argparse
import json
import sys

import requests
from fastchat.conversation import Conversation, SeparatorStyle, get_conv_template


def conversation_from_worker(worker, model):
    reply = requests.post(worker + "/worker_get_conv_template", json={"model": model}, timeout=30)
    reply.raise_for_status()
    c = reply.json()["conv"]
    # The same fields, the same way, as fastchat.serve.openai_api_server.get_gen_params.
    return Conversation(
        name=c["name"],
        system_template=c["system_template"],
        system_message=c["system_message"],
        roles=c["roles"],
        messages=list(c["messages"]),
        offset=c["offset"],
        sep_style=SeparatorStyle(c["sep_style"]),
        sep=c["sep"],
        sep2=c["sep2"],
        stop_str=c["stop_str"],
        stop_token_ids=c["stop_token_ids"],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controller-address", default="http://localhost:21001")
    parser.add_argument("--worker-address")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--conv-template", help="a FastChat template name; default: the worker's")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--message", default="Tell me a story with more than 1000 words.")
    args = parser.parse_args()

    worker = args.worker_address
    if not worker:
        controller = args.controller_address.rstrip("/")
        requests.post(controller + "/refresh_all_workers", timeout=60)
        models = sorted(requests.post(controller + "/list_models", timeout=30).json()["models"])
        print(f"Models: {models}")
        worker = requests.post(
            controller + "/get_worker_address", json={"model": args.model_name}, timeout=30
        ).json()["address"]
        print(f"worker_addr: {worker}")
    if worker == "":
        print(f"No available workers for {args.model_name}")
        return 1

    if args.conv_template:
        conv = get_conv_template(args.conv_template)
    else:
        conv = conversation_from_worker(worker, args.model_name)
    conv.append_message(conv.roles[0], args.message)
    conv.append_message(conv.roles[1], None)
    params = {
        "model": args.model_name,
        "prompt": conv.get_prompt(),
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "stop": conv.stop_str,
        "stop_token_ids": conv.stop_token_ids,
        "echo": False,
    }
    reply = requests.post(
        worker + "/worker_generate_stream",
        headers={"User-Agent": "FastChat Client"},
        json=params,
        stream=True,
        timeout=100,
    )
    print(f"{conv.roles[0]}: {args.message}")
    print(f"{conv.roles[1]}: ", end="")
    shown = 0
    for chunk in reply.iter_lines(decode_unicode=False, delimiter=b"\0"):
        if not chunk:
            continue
        data = json.loads(chunk.decode())
        if data.get("error_code", 0) != 0:
            print(f"\nerror {data['error_code']}: {data['text']}")
            return 1
        text = data["text"].strip()
        print(text[shown:], end="", flush=True)
        shown = len(text)
    print("")
    return 0


if __name__ == "__main__":
    sys.exit(main())
