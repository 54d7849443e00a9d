"""
The prompt scaffold: how a role's user text becomes the text a model continues, and how the
model's completion is read back.

Every prompt of proposer.py and solver.py is one user turn. Two scaffolds:
  chat  the tokenizer's chat template with the assistant turn opened (ChatML for Qwen2.5-Instruct,
        SmolLM2 and the toy base), or a plain "User: ... / Assistant:" frame without a template;
  r1    AZR's released scaffold for base models: the chat template is blanked and the user text
        wrapped in the R1 instruction, "<think>" prefilled (AZR arXiv 2505.03335, as its released
        code does it: absolute_zero_reasoner/data_construction/process_data.py, branch paper).
With r1 the model continues after the prefilled "<think>", so `completion` puts it back in front
before the response is parsed, as the released reward manager reads the text after "Assistant:".
"""

TEMPLATES = ("auto", "chat", "r1")

# ChatML, the format of Qwen2.5 and SmolLM2, so the tiny and toy models' prompts look like the real ones
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")

R1_PREFILL = "<think>"
R1 = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
      "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
      "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
      "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
      "User: {}\nAssistant: " + R1_PREFILL)


def resolve_template(tokenizer, template):
    """auto -> chat for a tokenizer with a chat template, r1 for one without (a base model)."""
    if template == "auto":
        return "chat" if tokenizer.chat_template else "r1"
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose from {', '.join(TEMPLATES)}")
    return template


def render_chat(tokenizer, user_text):
    """The prompt text for one user turn, ready for `sample`: the tokenizer's chat template with the
    assistant turn opened, or "User: ...\\nAssistant: " for a tokenizer without one. `sample`
    tokenizes without adding special tokens, so the plain template writes the BOS (if any) itself."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": user_text}],
                                             add_generation_prompt=True, tokenize=False)
    return f"{tokenizer.bos_token or ''}User: {user_text}\nAssistant: "


def render_prompt(tokenizer, user_text, template="chat"):
    """The prompt text for one user turn under a scaffold: chat, r1, or auto (`resolve_template`)."""
    if resolve_template(tokenizer, template) == "r1":
        return (tokenizer.bos_token or "") + R1.format(user_text)
    return render_chat(tokenizer, user_text)


def completion(text, template="chat"):
    """What the model said, for parsing: with r1 the prefilled "<think>" comes back in front, and
    the text ends before any "Assistant:" the model wrote, as AZR's reward manager reads it
    (`sequence.split("Assistant:")[1]` of prompt and response, the prompt's own "Assistant:" first)."""
    return (R1_PREFILL + text).split("Assistant:")[0] if template == "r1" else text


def teacher_forced(tokenizer, user_text, response, template="chat"):
    """(prompt text, response text) of a response scored by teacher forcing under a scaffold: with r1
    the prompt already ends in the prefilled "<think>", so a response that starts with it (as
    `completion` gives them back) loses it there, and the tokens scored are the ones the model wrote."""
    template = resolve_template(tokenizer, template)
    if template == "r1" and response.startswith(R1_PREFILL):
        response = response[len(R1_PREFILL):]
    return render_prompt(tokenizer, user_text, template), response
