"""The real `openai` Python package against `zoo serve` (run by tests/serve.rs).

usage: python openai_client.py BASE_URL API_KEY   -> one JSON line of what it saw
"""
import json
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
out = {}

models = [m.id for m in client.models.list().data]
out["models"] = models
model = models[0]
messages = [{"role": "user", "content": "What is the capital of France?"}]

r = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0)
out["chat_text"] = r.choices[0].message.content
out["chat_finish"] = r.choices[0].finish_reason
out["chat_usage"] = r.usage.model_dump() if r.usage else None
assert r.usage and r.usage.completion_tokens > 0, r

chunks = []
usage = None
stream = client.chat.completions.create(
    model=model, messages=messages, max_tokens=24, temperature=0, stream=True,
    stream_options={"include_usage": True},
)
for c in stream:
    if c.usage is not None:
        usage = c.usage
    for ch in c.choices:
        if ch.delta and ch.delta.content:
            chunks.append(ch.delta.content)
out["stream_chunks"] = len(chunks)
out["stream_text"] = "".join(chunks)
out["stream_usage"] = usage.model_dump() if usage else None
assert usage is not None and usage.completion_tokens > 0

c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
out["completion_text"] = c.choices[0].text

try:
    client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=4)
    out["unknown_model_status"] = 200
except openai.NotFoundError as e:
    out["unknown_model_status"] = e.status_code
    out["unknown_model_message"] = str(e.message)

bad = openai.OpenAI(base_url=base, api_key="wrong", max_retries=0)
try:
    bad.models.list()
    out["wrong_key_status"] = 200
except openai.AuthenticationError as e:
    out["wrong_key_status"] = e.status_code

print(json.dumps(out, ensure_ascii=False))
