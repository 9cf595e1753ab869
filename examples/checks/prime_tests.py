# ruff: noqa: F821
# The asserts `thinkloop ask "Write is_prime(n)" --check tests:examples/checks/prime_tests.py` runs against the
# model's program, in the sandbox: is_prime is the function the model writes.
assert is_prime(2) is True
assert is_prime(3) is True
assert is_prime(4) is False
assert is_prime(1) is False
assert is_prime(0) is False
assert is_prime(17) is True
assert is_prime(21) is False
assert is_prime(97) is True
