"""
The prompt scaffold: how a role's user text becomes the text a model continues.

Every prompt of proposer.py and solver.py is one user turn. A model with a chat template gets it
through that template, the assistant turn opened (ChatML for Qwen2.5, SmolLM2, and the toy base);
a model without one gets a plain "User: ... / Assistant:" frame.
"""

# ChatML, the format of Qwen2.5 and SmolLM2, so the tiny and toy models' prompts look like the real ones
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")


def render_chat(tokenizer, user_text):
    """The prompt text for one user turn, ready for `sample`: the tokenizer's chat template with the
    assistant turn opened, or "User: ...\\nAssistant: " for a tokenizer without one. `sample`
    tokenizes without adding special tokens, so the plain template writes the BOS (if any) itself."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": user_text}],
                                             add_generation_prompt=True, tokenize=False)
    return f"{tokenizer.bos_token or ''}User: {user_text}\nAssistant: "
