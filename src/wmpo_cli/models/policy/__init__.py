"""The vision-language-action policy (issue 4; work in progress)."""
