"""
The toy base: a byte-level BPE tokenizer and a small Llama trained from scratch on the toy world's
corpus (toytasks.py) with a plain PyTorch loop, saved as a Hugging Face folder.

It is the `toy` built-in of models.py and the default model of grpo.py: a base model that plays
the game on a CPU. Like its corpus, it can work a program out step by step but mostly answers at
once, and then often wrongly: headroom that self-play can take up by selecting the careful style,
measured by toyworld.py on the held-out set (each style's accuracy when forced, and how often the
model picks it).

    python toyworld.py --build           # build it into the cache (`--model toy` does it on first use)
"""

import json
import math
import os
import random
import re
import string
import time
from dataclasses import dataclass, replace

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models as tok_models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import proposer
import solver
from chat import CHATML, render_chat
from toytasks import CORPUS_DEPTHS, DEPTHS, WRONG_SHARE, corpus_examples, generate, heldout, style_of

MAX_TOKENS = 1024             # the model's context: the longest prompt here is about 600 tokens
PROMPT_WEIGHT = 0.25           # loss weight of prompt tokens in pretraining (responses: 1)


@dataclass
class BuildSettings:
    """Everything that decides what `build` writes; the defaults are the `toy` built-in.

    Sized for the skill the corpus holds in reserve (toytasks.py: careful answers trace a program
    step by step, a quarter of the solver's answers). A calibration run (a character-level Llama
    of 0.86M parameters on list programs of digits) learned to compute the steps after about 2,150
    steps of 64 sequences and only the format after a fifth of that. This world is wider (integer
    and list programs of 1 to 3 steps, abduction and the proposer's formats in the same corpus):
    built with 2,600 steps of about 64 sequences (the corpus averages about 94 tokens a sequence),
    the base had learned the format but not the steps (held-out deduction, forced careful 17.3 %
    against forced hasty 13.8 %; two traces in five wrong already in copying the arguments);
    with 8,000 steps it traces them (forced careful 63.0 % against 23.8 %). Hidden 128, 4 layers, 0.9M
    parameters: 67 minutes on a 2-core VM with 2 threads."""
    seed: int = 0
    programs: int = 12_000      # generated programs, INPUTS_PER_PROGRAM random inputs each
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    vocab: int = 2_000          # BPE merges plus the byte alphabet and the special tokens
    steps: int = 8_000          # optimizer steps
    batch_tokens: int = 6_144   # tokens per optimizer step, padding included
    lr: float = 3e-3
    threads: int = 2
    wrong_share: tuple = (WRONG_SHARE,) * len(DEPTHS)  # a hasty answer's chance of a near miss, by depth 1, 2, 3

    def reduced(self, **changes):
        """The same build, shrunk to seconds for tests: few programs, a one-layer model of width
        32, a few steps. The architecture is the same; only sizes differ (and `changes`)."""
        small = {"programs": 150, "hidden": 32, "layers": 1, "heads": 2, "vocab": 600, "steps": 3,
                 "batch_tokens": 1_024, "threads": 1}
        return replace(self, **{**small, **changes})


# toy-v3: toy-v2's build but for the hasty answers' error, which grows with the program's depth (a
# hasty answer is wrong a tenth of the time at depth 1, nine tenths at depth 3). In toy-v2 (0.6 at
# every depth) RLVR on the easiest tasks alone taught more than on the hardest, and the base's own
# mix most: the tasks a proposer invents could not pay for being hard. Here careful tracing pays
# on deep tasks and hardly on shallow ones, so which tasks a solver trains on should matter.
TOY_V3 = BuildSettings(wrong_share=(0.1, 0.5, 0.9))


# -----------------------------------------------------------------------------
# The tokenizer: byte-level BPE trained on the corpus. The answer tags are added tokens, so BPE
# cannot fuse a quote with a tag, and digits are split, so numbers are spelled digit by digit.
# The fixed text of every prompt (rules, answer format: thousands of characters, the same in
# every prompt) is learned as whole tokens: the small model then spends its compute on the
# programs, not on re-reading the rules, and a prompt is a few dozen tokens long.

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # pad, turn start, turn end (eos), as Qwen2.5
STRING_LITERAL = re.compile(r"'[^'\n]*'")  # learn no merges inside strings: see train_tokenizer
MIN_PIECE_CHARS = 100  # shorter fixed text ("```input") also occurs in answers: BPE handles it


def _fixed_pieces(template, constants):
    """The literal text between the variable fields of a str.format template, with the constant
    fields filled in: e.g. the deduction prompt's text before {program}, between it and {input},
    and after {input}."""
    pieces, current = [], ""
    for literal, field, _, _ in string.Formatter().parse(template):
        current += literal
        if field is None:
            continue
        if field in constants:
            current += constants[field]
        else:
            pieces.append(current)
            current = ""
    return pieces + [current]


def prompt_pieces():
    """The fixed text of the five prompts of solver.py and proposer.py, longest first."""
    rules = {"format": solver.RESPONSE_FORMAT, "rules": solver.PROGRAM_RULES, "program_rules": solver.PROGRAM_RULES,
             "input_rules": proposer.INPUT_RULES}
    pieces = [p for template in (solver.DEDUCTION_PROMPT, solver.ABDUCTION_PROMPT, solver.INDUCTION_PROMPT,
                                 proposer.INDUCTION_PROPOSAL_PROMPT) for p in _fixed_pieces(template, rules)]
    for goal in proposer.PROPOSAL_GOALS.values():
        pieces += _fixed_pieces(proposer.PROPOSAL_PROMPT, {**rules, "goal": goal})
    return sorted({p for p in pieces if len(p) >= MIN_PIECE_CHARS}, key=lambda p: (-len(p), p))


def train_tokenizer(texts, vocab):
    """A byte-level BPE of `vocab` tokens in all, trained on texts, wrapped for transformers with
    the ChatML template of chat.py. Specials: SPECIALS; added (kept on decode): the answer tags
    and the prompt pieces, which are cut out of the training text so that no merge is spent on them."""
    added = list(solver.TAGS) + prompt_pieces()
    tokenizer = Tokenizer(tok_models.BPE())
    # One digit per token, never fused with the space before it: " 12" and "[12" both spell 1, 2
    # with the same digit tokens, so the small model learns each digit once, not twice. A quote is
    # a token of its own, never fused with a space: the quote before the input's 'salt' and the one
    # before its restatement in the <think> are then the same token, which the model must match to
    # copy the word (fused, string inputs were never copied), and 'salt' is not split as 's + alt
    # (the byte-level split's contraction rule).
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\d|'"), "isolated"),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(added), special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

    def without_pieces(text):
        for piece in added:
            text = text.replace(piece, "\n")
        return STRING_LITERAL.sub("''", text)

    tokenizer.train_from_iterator((without_pieces(t) for t in texts), trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   extra_special_tokens=["<|im_start|>"], chat_template=CHATML)


# -----------------------------------------------------------------------------
# The model, and pretraining with a plain PyTorch loop


def model_config(tokenizer, settings):
    """A Llama of a few million parameters: tied embeddings, no biases, no BOS (the chat template
    opens every prompt), the tokenizer's eos and pad."""
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=settings.hidden, intermediate_size=settings.hidden * 8 // 3,
                       num_hidden_layers=settings.layers, num_attention_heads=settings.heads,
                       num_key_value_heads=settings.heads, max_position_embeddings=MAX_TOKENS, tie_word_embeddings=True,
                       bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def new_model(tokenizer, settings):
    """model_config's Llama, random init from settings.seed."""
    torch.manual_seed(settings.seed)
    return LlamaForCausalLM(model_config(tokenizer, settings))


def encode(tokenizer, examples):
    """The token ids of each example: the chat-rendered prompt, the response, the eos. The two
    parts are tokenized apart, as `sample` sees them (it generates after the rendered prompt).
    Returns (ids, prompt length) per example."""
    prompts = tokenizer([render_chat(tokenizer, u) for u, _, _ in examples], add_special_tokens=False).input_ids
    responses = tokenizer([r for _, r, _ in examples], add_special_tokens=False).input_ids
    return [(p + r + [tokenizer.eos_token_id], len(p)) for p, r in zip(prompts, responses)]


def token_batches(sequences, batch_tokens, rng):
    """Endless batches of indices of about batch_tokens tokens (padding included): each epoch is
    shuffled, then cut into runs of similar length so that little of a batch is padding."""
    while True:
        order = list(range(len(sequences)))
        rng.shuffle(order)
        epoch = []
        for start in range(0, len(order), 256):
            run = sorted(order[start:start + 256], key=lambda k: len(sequences[k][0]))
            current = []
            for k in run:
                if current and (len(current) + 1) * len(sequences[k][0]) > batch_tokens:
                    epoch.append(current)
                    current = []
                current.append(k)
            epoch.append(current)
        rng.shuffle(epoch)
        yield from epoch


def lm_loss(model, sequences, pad_id):
    """Next-token cross-entropy over every token of the examples ((ids, prompt length) pairs) after
    the first, the prompt's tokens weighted PROMPT_WEIGHT and the response's 1, with the output
    layer run only where there is a target, not on padding.

    The prompt is a target too: it holds programs (in every prompt, and several per proposer
    prompt, with their outputs), so the model learns to write programs from all of them. On an
    earlier corpus, trained on the responses alone, the same budget gave 6 % valid proposals
    instead of about 65 %. Weighted less, the prompts leave more of the small model to the
    answers, a few tokens per example."""
    width = max(len(ids) for ids, _ in sequences)
    ids = torch.full((len(sequences), width), pad_id)
    weight = torch.zeros((len(sequences), width))
    for b, (seq, prompt) in enumerate(sequences):
        ids[b, :len(seq)] = torch.tensor(seq)
        weight[b, :prompt] = PROMPT_WEIGHT
        weight[b, prompt:len(seq)] = 1.0
    hidden = model.model(input_ids=ids, attention_mask=(weight > 0).long()).last_hidden_state
    target = weight[:, 1:] > 0
    logits = model.lm_head(hidden[:, :-1][target])
    losses = torch.nn.functional.cross_entropy(logits, ids[:, 1:][target], reduction="none")
    w = weight[:, 1:][target]
    return (losses * w).sum() / w.sum()


def pretrain(model, sequences, settings, pad_id):
    """AdamW, linear warm-up over the first 5 % of steps, then cosine decay to a tenth."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, settings.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 0.1 + 0.45 * (
        1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, settings.steps - warmup))))))
    stream = token_batches(sequences, settings.batch_tokens, random.Random(settings.seed))
    model.train()
    bar = tqdm(range(settings.steps), desc="toy base: pretraining")
    for _ in bar:
        loss = lm_loss(model, [sequences[k] for k in next(stream)], pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return loss.item()


# -----------------------------------------------------------------------------
# The build: corpus, tokenizer, model, saved as a Hugging Face folder (models.BUILTINS['toy'])


def build(folder, settings=BuildSettings()):
    """Write the toy base to `folder`: a Hugging Face model + tokenizer folder, and toyworld.json
    with the settings, the corpus counts, the build time and every corpus program (to tell a
    novel proposal from a copy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # more threads than cores slows training several times
    try:
        start = time.time()
        rng = random.Random(settings.seed)
        seen, generated = {proposer.task_key(t.task) for t in heldout()}, []  # no held-out task in the corpus
        for done in tqdm(range(0, settings.programs, 1000), desc="toy base: programs"):
            generated += generate(min(1000, settings.programs - done), rng, depths=CORPUS_DEPTHS, seen=seen)
        examples = corpus_examples(generated, rng, settings.wrong_share)
        tokenizer = train_tokenizer([text for u, r, _ in examples for text in (u, r)], settings.vocab)
        sequences = encode(tokenizer, examples)
        model = new_model(tokenizer, settings)
        loss = pretrain(model, sequences, settings, tokenizer.pad_token_id)
        model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        kinds = {}  # examples per kind, and the solver's deduction and abduction answers per style
        for _, response, kind in examples:
            styled = kind in ("solver/deduction", "solver/abduction")
            for key in [kind] + ([f"{kind} {style_of(response)}"] if styled else []):
                kinds[key] = kinds.get(key, 0) + 1
        info = {"settings": vars(settings), "seconds": round(time.time() - start, 1), "threads": settings.threads,
                "parameters": sum(p.numel() for p in model.parameters()), "examples": kinds,
                "corpus_tokens": sum(len(ids) for ids, _ in sequences), "final_loss": loss,
                "programs": sorted({g.task.program for g in generated})}
        with open(os.path.join(folder, "toyworld.json"), "w") as f:
            json.dump(info, f, indent=1)
    finally:
        torch.set_num_threads(threads)
