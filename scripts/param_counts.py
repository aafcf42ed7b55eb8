#!/usr/bin/env python3
"""Parameter counts from architecture config shapes (docs/CATALOG.md, "Parameter counts").

Run it to print every count the catalog uses with params_source = "config"; it asserts the
formulas against published exact counts (KNOWN)."""

def llama(h, L, f, V, kv=None, tied=False, qkv_bias=False, norms_per_layer=2, q_dim=None):
    q_dim = q_dim or h
    kv = kv if kv is not None else q_dim
    attn = h*q_dim + 2*h*kv + q_dim*h + ((q_dim + 2*kv) if qkv_bias else 0)
    mlp = 3*h*f
    layer = attn + mlp + norms_per_layer*h
    emb = V*h*(1 if tied else 2)
    return L*layer + emb + h

def qwen1(h, L, inter, V):  # Qwen v1: c_attn with bias, w1/w2 of inter/2, untied
    f = inter//2
    layer = h*3*h + 3*h + h*h + 3*h*f + 2*h
    return L*layer + 2*V*h + h

def bloom(h, L, V):  # BLOOM: word_embeddings_layernorm, fused qkv with bias, tied
    layer = (h*3*h + 3*h) + (h*h + h) + (h*4*h + 4*h) + (4*h*h + h) + 2*2*h
    return L*layer + V*h + 2*h + 2*h

def baichuan(h, L, f, V):
    return llama(h, L, f, V)

def chatglm6b(V=130528, h=4096, L=28, f=16384):
    layer = (h*3*h + 3*h) + (h*h + h) + (h*f + f) + (f*h + h) + 2*2*h
    return L*layer + V*h + 2*h

def gptj(V=50400, h=4096, L=28):
    f = 4*h
    layer = 4*h*h + (h*f + f) + (f*h + h) + 2*h
    return L*layer + V*h + 2*h + V*h + V

def codegen(V, h, L):
    f = 4*h
    layer = 4*h*h + (h*f + f) + (f*h + h) + 2*h
    return L*layer + V*h + 2*h + V*h + V

def gemma(h, L, f, V, heads, kvh, hd=256, norms=2):
    q = heads*hd; kv = kvh*hd
    layer = h*q + 2*h*kv + q*h + 3*h*f + norms*h
    return L*layer + V*h + h

def phi3(h=3072, L=32, f=8192, V=32064):
    layer = h*3*h + h*h + h*2*f + f*h + 2*h
    return L*layer + 2*V*h + h

C = {}
C['llama-7b'] = llama(4096, 32, 11008, 32000)
C['llama-13b'] = llama(5120, 40, 13824, 32000)
C['llama-7b+pad'] = llama(4096, 32, 11008, 32001)
C['llama-13b+pad'] = llama(5120, 40, 13824, 32001)
C['ziya-13b'] = llama(5120, 40, 13824, 39424)
C['chinese-alpaca-7b'] = llama(4096, 32, 11008, 49954)
C['chinese-alpaca-13b'] = llama(5120, 40, 13824, 49954)
C['chinese-llama-7b'] = llama(4096, 32, 11008, 49953)
C['llama-2-70b'] = llama(8192, 80, 28672, 32000, kv=1024)
C['llama3-8b'] = llama(4096, 32, 14336, 128256, kv=1024)
C['mistral-7b'] = llama(4096, 32, 14336, 32000, kv=1024)
C['yi-6b'] = llama(4096, 32, 11008, 64000, kv=512)
C['yi-34b'] = llama(7168, 60, 20480, 64000, kv=1024)
C['internlm2-7b'] = llama(4096, 32, 14336, 92544, kv=1024)
C['baichuan-7b'] = baichuan(4096, 32, 11008, 64000)
C['baichuan-13b'] = baichuan(5120, 40, 13696, 64000)
C['baichuan2-7b'] = baichuan(4096, 32, 11008, 125696)
C['baichuan2-13b'] = baichuan(5120, 40, 13696, 125696)
C['qwen1.5-0.5b'] = llama(1024, 24, 2816, 151936, tied=True, qkv_bias=True)
C['qwen2-0.5b'] = llama(896, 24, 4864, 151936, kv=128, tied=True, qkv_bias=True)
C['qwen2-1.5b'] = llama(1536, 28, 8960, 151936, kv=256, tied=True, qkv_bias=True)
C['qwen2-7b'] = llama(3584, 28, 18944, 152064, kv=512, qkv_bias=True)
C['qwen-1.8b'] = qwen1(2048, 24, 11008, 151936)
C['qwen-7b'] = qwen1(4096, 32, 22016, 151936)
C['qwen-14b'] = qwen1(5120, 40, 27392, 152064)
C['qwen-72b'] = qwen1(8192, 80, 49152, 152064)
C['bloom-7b1'] = bloom(4096, 30, 250880)
C['bloom-560m'] = bloom(1024, 24, 250880)
C['chatglm-6b'] = chatglm6b()
C['gpt-j-6b'] = gptj()
C['moss-moon-003'] = codegen(107008, 6144, 34)
C['gemma-2b'] = gemma(2048, 18, 16384, 256000, 8, 1)
C['gemma-7b'] = gemma(3072, 28, 24576, 256000, 16, 16)
C['gemma-2-2b'] = gemma(2304, 26, 9216, 256000, 8, 4, norms=4)
C['gemma-2-9b'] = gemma(3584, 42, 14336, 256000, 16, 8, norms=4)
C['phi-3-mini'] = phi3()
C['smollm2-135m'] = llama(576, 30, 1536, 49152, kv=192, tied=True)

KNOWN = {  # published counts to check the formulas against
    'llama-7b': 6738415616, 'bloom-7b1': 7069016064, 'bloom-560m': 559214592, 'baichuan-7b': 7000559616,
    'chatglm-6b': 6173286400, 'qwen-7b': 7721324544, 'chinese-llama-7b': 6885486592,
    'moss-moon-003': 16717980160, 'smollm2-135m': 134515008, 'baichuan-13b': 13264901120,
    'qwen2-0.5b': 494032768, 'qwen2-1.5b': 1543714304, 'qwen2-7b': 7615616512, 'gemma-2b': 2506172416,
    'gemma-7b': 8537680896, 'gemma-2-2b': 2614341888, 'gemma-2-9b': 9241705984, 'yi-6b': 6061035520,
    'yi-34b': 34388917248, 'phi-3-mini': 3821079552, 'mistral-7b': 7241732096, 'llama3-8b': 8030261248,
    'llama-2-70b': 68976648192,
}
if __name__ == '__main__':
    bad = 0
    for k, v in C.items():
        flag = ''
        if k in KNOWN:
            flag = 'OK' if KNOWN[k] == v else f'MISMATCH (published {KNOWN[k]:,})'
            bad += KNOWN[k] != v
        print(f'{k:22} {v:>16,} {v/1e9:9.4f}B {flag}')
    assert bad == 0
