/* examples/char_rnn.c: a character-level recurrent network learns a paragraph by heart, trained
 * by backpropagation through time over 64 steps at a time.
 *
 *   x_t = one-hot(char t) [1, V]
 *   h_t = tanh(x_t Wx^T + h_{t-1} Wh^T + b)      [1, H]      (an Elman RNN)
 *   logits_t = h_t Wy^T + by                      [1, V]  -> the next character
 *
 * Each update unrolls T = 64 steps into one graph (every step reuses Wx, Wh, Wy, so their
 * gradients are sums over time), takes the cross-entropy against the following characters,
 * backpropagates through all 64 steps, clips the gradient norm and steps Adam. The hidden
 * state carries over to the next 64 characters detached (truncated BPTT).
 *
 *   ./build/char_rnn    exits 1 unless, fed the paragraph, the network predicts at least 98% of
 *                       its next characters, and, given only the first letter and left to
 *                       pick its own most likely next character, writes the paragraph out */
#include <stdio.h>
#include <string.h>

#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

enum { H = 128, T = 64, PASSES = 150 };

static const char *text =
    "Reverse mode differentiation walks the graph once, from the loss back to the inputs. "
    "Each node adds its share of the gradient into the nodes it was made from, so a tensor "
    "used twice receives the sum of both shares. The tape is already in topological order.";

typedef struct {
    nn_linear x2h, h2h, h2y; /* [V -> H] with the bias b, [H -> H] without, [H -> V] */
} rnn;

/* Runs the RNN over ids[0..n) from hidden state h [1, H]; returns the logits [n, V] and leaves
 * the last hidden state in *h_out. */
static Tensor *unroll(const rnn *m, const int64_t *ids, int64_t n, int64_t V, Tensor *h,
                      Tensor **h_out) {
    Tensor *onehot = ag_zeros(NB_SHAPE(n, V));
    for (int64_t t = 0; t < n; t++) onehot->data[t * V + ids[t]] = 1;
    Tensor *xs = nn_linear_forward(&m->x2h, onehot); /* all inputs at once: [n, H] */
    Tensor *hs[T];
    for (int64_t t = 0; t < n; t++) {
        h = nn_tanh(ag_add(ag_narrow(xs, 0, t, 1), nn_linear_forward(&m->h2h, h)));
        hs[t] = h;
    }
    *h_out = h;
    return nn_linear_forward(&m->h2y, ag_concat(hs, (int)n, 0)); /* [n, V] */
}

static int64_t argmax(const Tensor *logits, int64_t row, int64_t V) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (tensor_get(logits, (int64_t[]){row, v}) > tensor_get(logits, (int64_t[]){row, best}))
            best = v;
    return best;
}

int main(void) {
    nb_set_num_threads(1); /* matrices of 128 x 128: one thread */
    int64_t n = (int64_t)strlen(text), V = 0, ids[512];
    char vocab[128];
    for (int64_t i = 0; i < n; i++) { /* the characters the paragraph uses, in order of use */
        const char *at = memchr(vocab, text[i], (size_t)V);
        if (!at) vocab[V++] = text[i];
        ids[i] = at ? at - vocab : V - 1;
    }
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    rnn m;
    nn_linear_init(&m.x2h, V, H, true, &rng);
    nn_linear_init(&m.h2h, H, H, false, &rng);
    nn_linear_init(&m.h2y, H, V, true, &rng);
    nn_params ps = {0};
    nn_linear_params(&m.x2h, "x2h", &ps);
    nn_linear_params(&m.h2h, "h2h", &ps);
    nn_linear_params(&m.h2y, "h2y", &ps);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(3e-3));
    printf("%lld characters, %lld distinct; BPTT over %d steps\n", (long long)n, (long long)V, T);

    real hbuf[H] = {0};
    for (int pass = 0; pass < PASSES; pass++) {
        double loss_sum = 0;
        memset(hbuf, 0, sizeof hbuf);
        for (int64_t s = 0; s + 1 < n; s += T) {
            int64_t len = n - 1 - s < T ? n - 1 - s : T;
            Tensor *h, *h0 = ag_constant(NB_SHAPE(1, H), hbuf); /* detached: no graph */
            nn_optim_zero_grad(opt);
            Tensor *logits = unroll(&m, ids + s, len, V, h0, &h);
            Tensor *loss = nn_cross_entropy(logits, ids + s + 1, NN_MEAN);
            ag_backward(loss);
            nn_clip_grad_norm(&ps, 1.0, NULL);
            nn_optim_step(opt);
            tensor_to_array(h, hbuf);
            loss_sum += tensor_item(loss) * (double)len;
            ag_reset();
        }
        if (pass % 30 == 0 || pass == PASSES - 1)
            printf("pass %3d  loss %.4f nats/char\n", pass, loss_sum / (double)(n - 1));
    }

    /* Fed the paragraph (teacher forcing), how many next characters does it get right? */
    bool prev = ag_set_grad_enabled(false);
    Tensor *h = ag_zeros(NB_SHAPE(1, H));
    int64_t right = 0;
    for (int64_t s = 0; s + 1 < n; s += T) {
        int64_t len = n - 1 - s < T ? n - 1 - s : T;
        Tensor *logits = unroll(&m, ids + s, len, V, h, &h);
        for (int64_t t = 0; t < len; t++) right += argmax(logits, t, V) == ids[s + t + 1];
    }
    double acc = (double)right / (double)(n - 1);
    /* Left to itself: the first letter, then always its own most likely next character. */
    char out[512] = {text[0]};
    int64_t id = ids[0];
    h = ag_zeros(NB_SHAPE(1, H));
    for (int64_t t = 1; t < n; t++) {
        id = argmax(unroll(&m, &id, 1, V, h, &h), 0, V);
        out[t] = vocab[id];
    }
    ag_reset();
    ag_set_grad_enabled(prev);
    printf("next-character accuracy %.3f\nwritten from '%c':\n%s\n", acc, text[0], out);
    bool ok = acc >= 0.98 && strcmp(out, text) == 0;
    printf("%s\n", ok ? "the paragraph is learned" : "the paragraph is NOT learned");

    nn_optim_free(opt);
    nn_params_free(&ps);
    nn_linear_free(&m.x2h), nn_linear_free(&m.h2h), nn_linear_free(&m.h2y);
    arena_free_all();
    return ok ? 0 : 1;
}
