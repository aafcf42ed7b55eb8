"""The `openai` package against an OpenAI front of a cluster (zoo's or FastChat's).

usage: python openai_cluster.py BASE_URL MODEL [ROUNDS]  -> one JSON line: the models, the greedy
chat answer, the streamed answer and its chunk count, and the answers of ROUNDS more chats.
"""
import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 0
client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=120)
messages = [{"role": "user", "content": "What is the capital of France?"}]
out = {"models": sorted(m.id for m in client.models.list().data)}
r = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0)
out["chat_text"] = r.choices[0].message.content
out["chat_finish"] = r.choices[0].finish_reason
pieces = []
for c in client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, stream=True):
    for ch in c.choices:
        if ch.delta and ch.delta.content:
            pieces.append(ch.delta.content)
out["stream_chunks"] = len(pieces)
out["stream_text"] = "".join(pieces)
out["rounds"] = [
    client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0).choices[0].message.content
    for _ in range(rounds)
]
print(json.dumps(out, ensure_ascii=False))
