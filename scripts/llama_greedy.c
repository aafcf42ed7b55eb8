/* llama-greedy: greedy decoding from given prompt token ids with libllama (no sampler, no EOG stop).
 * Built by scripts/llama-cpp.sh against the vendored llama.cpp.
 * usage: llama-greedy -m model.gguf [-n 8] [-t 2] ID,ID,ID,...
 * prints one JSON line: {"ids":[...],"top10_ids":[...],"top10_logits":[...]}  (top10 = first step) */
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet_log(enum ggml_log_level level, const char * text, void * ud) {
    (void) ud;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    const char * model_path = NULL; int n_predict = 8, n_threads = 2; const char * ids_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_predict = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else ids_arg = argv[i];
    }
    if (!model_path || !ids_arg) { fprintf(stderr, "usage: %s -m model.gguf [-n 8] [-t 2] ID,ID,...\n", argv[0]); return 2; }
    int cap = 16, n_prompt = 0; llama_token * toks = malloc(sizeof(llama_token) * (cap + n_predict));
    char * ids_copy = strdup(ids_arg);
    for (char * p = strtok(ids_copy, ", "); p; p = strtok(NULL, ", ")) {
        if (n_prompt == cap) { cap *= 2; toks = realloc(toks, sizeof(llama_token) * (cap + n_predict)); }
        toks[n_prompt++] = atoi(p);
    }
    if (!getenv("LLAMA_GREEDY_VERBOSE")) llama_log_set(quiet_log, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model * model = llama_model_load_from_file(model_path, mp);
    if (!model) { fprintf(stderr, "llama-greedy: cannot load %s\n", model_path); return 1; }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_predict + 8; cp.n_batch = n_prompt > 512 ? n_prompt : 512; cp.n_ubatch = cp.n_batch;
    cp.n_threads = n_threads; cp.n_threads_batch = n_threads; cp.no_perf = 1;
    struct llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "llama-greedy: cannot create context\n"); return 1; }
    struct llama_batch batch = llama_batch_get_one(toks, n_prompt);
    llama_token out[4096]; int top_ids[10]; float top_l[10];
    if (n_predict > 4096) n_predict = 4096;
    for (int step = 0; step < n_predict; step++) {
        if (llama_decode(ctx, batch)) { fprintf(stderr, "llama-greedy: decode failed\n"); return 1; }
        const float * lg = llama_get_logits_ith(ctx, -1);
        int best = 0; for (int v = 1; v < n_vocab; v++) if (lg[v] > lg[best]) best = v;
        if (step == 0) {  /* top-10 by repeated selection */
            for (int k = 0; k < 10; k++) {
                int b = -1;
                for (int v = 0; v < n_vocab; v++) {
                    int used = 0; for (int j = 0; j < k; j++) if (top_ids[j] == v) { used = 1; break; }
                    if (!used && (b < 0 || lg[v] > lg[b])) b = v;
                }
                top_ids[k] = b; top_l[k] = lg[b];
            }
        }
        out[step] = best;
        batch = llama_batch_get_one(&out[step], 1);
    }
    printf("{\"ids\":[");
    for (int i = 0; i < n_predict; i++) printf("%s%d", i ? "," : "", out[i]);
    printf("],\"top10_ids\":[");
    for (int i = 0; i < 10; i++) printf("%s%d", i ? "," : "", top_ids[i]);
    printf("],\"top10_logits\":[");
    for (int i = 0; i < 10; i++) printf("%s%.5f", i ? "," : "", top_l[i]);
    printf("]}\n");
    llama_free(ctx); llama_model_free(model); llama_backend_free();
    return 0;
}
