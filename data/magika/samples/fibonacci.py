#!/usr/bin/env python3
"""Print the first Fibonacci numbers, one per line."""

import sys


def fibonacci(count):
    """Yield the first `count` Fibonacci numbers."""
    a, b = 0, 1
    for _ in range(count):
        yield a
        a, b = b, a + b


def main(argv):
    count = int(argv[1]) if len(argv) > 1 else 10
    for number in fibonacci(count):
        print(number)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
