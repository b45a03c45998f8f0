"""The toy language's grammar, as data: its vocabulary and its transition table.

The grammar is a *probabilistic finite-state machine*. Every sentence starts in the
state ``START`` right after ``<s>``; each state lists the words that may come next, each
with its probability and the state it leads to. ``</s>`` ends the sentence (state
``END``). A word appears at most once per state, so the prefix alone tells which state
we are in, and the next-word distribution after a prefix is simply that state's row of
the table below. No state can be visited twice in one sentence, so every sentence is
short (11 tokens at most, ``<s>`` and ``</s>`` included) and exact sums over all
sentences are cheap.

::

   START        hello .30 > HELLO        the .25 > SUBJECT        this .15 > THIS
                GPT .12 > MACHINE        a .10 > SUBJECT          AI .08 > MACHINE
   HELLO        world .90 > HELLO_WORLD  GPT .05 > DONE           AI .05 > DONE
   HELLO_WORLD  this .75 > THIS          </s> .25
   THIS         is .95 > THIS_IS         model .05 > MACHINE
   THIS_IS      a .35 > IS_A             the .15 > IS_THE         GPT .15 > DONE
                AI .10 > DONE            not .10 > IS_NOT         good .08 > DONE
                new .07 > DONE
   IS_A         test .35 > DONE          language .20 > LANGUAGE  model .15 > DONE
                small .10 > KIND         new .10 > KIND           good .10 > KIND
   IS_THE       model .35 > DONE         test .25 > DONE          world .20 > DONE
                new .20 > KIND
   IS_NOT       a .80 > NOT_A            GPT .10 > DONE           AI .10 > DONE
   NOT_A        test .70 > DONE          model .15 > DONE         dog .15 > DONE
   KIND         model .45 > DONE         language .30 > LANGUAGE  test .25 > DONE
   LANGUAGE     model .85 > DONE         </s> .15
   SUBJECT      dog .12 > ANIMAL         cat .12 > ANIMAL         robot .12 > MACHINE
                model .12 > MACHINE      bird .10 > ANIMAL        computer .10 > MACHINE
                small .08 > SUBJECT_ADJ  big .08 > SUBJECT_ADJ    old .08 > SUBJECT_ADJ
                new .08 > SUBJECT_ADJ
   SUBJECT_ADJ  dog .20 > ANIMAL         cat .20 > ANIMAL         robot .20 > MACHINE
                bird .15 > ANIMAL        model .15 > MACHINE      computer .10 > MACHINE
   ANIMAL       is .40 > ANIMAL_IS       runs .30 > RUNS          sleeps .15 > DONE
                likes .15 > LIKES
   ANIMAL_IS    happy .16 > ADJ_END      small .14 > ADJ_END      big .13 > ADJ_END
                old .12 > ADJ_END        quiet .12 > ADJ_END      good .11 > ADJ_END
                very .11 > VERY          new .11 > ADJ_END
   VERY         happy .30 > ADJ_END      small .25 > ADJ_END      big .25 > ADJ_END
                old .20 > ADJ_END
   ADJ_END      </s> .85                 and .15 > AND_ADJ
   AND_ADJ      happy .30 > DONE         small .25 > DONE         quiet .25 > DONE
                old .20 > DONE
   RUNS         </s> .80                 fast .20 > DONE
   LIKES        the .60 > OBJECT         a .40 > OBJECT
   OBJECT       cat .20 > DONE           dog .20 > DONE           bird .15 > DONE
                book .15 > DONE          story .15 > DONE         robot .15 > DONE
   MACHINE      writes .30 > WRITES      learns .25 > LEARNS      is .25 > MACHINE_IS
                reads .20 > READS
   MACHINE_IS   smart .35 > ADJ_END      new .25 > ADJ_END        good .20 > ADJ_END
                a .20 > IS_A
   WRITES       a .70 > TEXT             the .30 > TEXT
   READS        the .60 > TEXT           a .40 > TEXT
   TEXT         story .35 > DONE         poem .25 > DONE          book .25 > DONE
                test .15 > DONE
   LEARNS       language .40 > DONE      fast .35 > DONE          </s> .25
   DONE         </s> 1.00

``toygpt.language.ToyLanguage`` turns this table into exact probabilities, sampling and
the allowed next words after a prefix.
"""

__all__ = ["VOCAB", "TRANSITIONS", "EXAMPLE_CONTEXTS", "BOS", "EOS", "START", "END"]

BOS, EOS = "<s>", "</s>"

# The lesson's ten words come first, so ids 0..9 are the lesson's ids; then the other
# words by part of speech; the sentence start and end tokens last.
VOCAB = [
    # the lesson's vocabulary
    "hello", "world", "this", "is", "a", "test", "model", "GPT", "language", "AI",
    # articles, small words
    "the", "not", "and", "very",
    # nouns
    "dog", "cat", "bird", "robot", "computer", "book", "story", "poem",
    # verbs
    "runs", "sleeps", "likes", "writes", "reads", "learns",
    # adjectives and an adverb
    "happy", "small", "big", "old", "new", "good", "quiet", "smart", "fast",
    # sentence start and end
    BOS, EOS,
]  # fmt: skip

# state -> [(next word, probability, next state), ...]; the table in the module
# docstring. "</s>" always leads to "END", which has no row: the sentence is over.
TRANSITIONS = {
    "START": [
        ("hello", 0.30, "HELLO"),
        ("the", 0.25, "SUBJECT"),
        ("this", 0.15, "THIS"),
        ("GPT", 0.12, "MACHINE"),
        ("a", 0.10, "SUBJECT"),
        ("AI", 0.08, "MACHINE"),
    ],
    "HELLO": [
        ("world", 0.90, "HELLO_WORLD"),
        ("GPT", 0.05, "DONE"),
        ("AI", 0.05, "DONE"),
    ],
    "HELLO_WORLD": [("this", 0.75, "THIS"), (EOS, 0.25, "END")],
    "THIS": [("is", 0.95, "THIS_IS"), ("model", 0.05, "MACHINE")],
    # the lesson's prompt "hello world this is" ends here: several plausible
    # continuations
    "THIS_IS": [
        ("a", 0.35, "IS_A"),
        ("the", 0.15, "IS_THE"),
        ("GPT", 0.15, "DONE"),
        ("AI", 0.10, "DONE"),
        ("not", 0.10, "IS_NOT"),
        ("good", 0.08, "DONE"),
        ("new", 0.07, "DONE"),
    ],
    "IS_A": [
        ("test", 0.35, "DONE"),
        ("language", 0.20, "LANGUAGE"),
        ("model", 0.15, "DONE"),
        ("small", 0.10, "KIND"),
        ("new", 0.10, "KIND"),
        ("good", 0.10, "KIND"),
    ],
    "IS_THE": [
        ("model", 0.35, "DONE"),
        ("test", 0.25, "DONE"),
        ("world", 0.20, "DONE"),
        ("new", 0.20, "KIND"),
    ],
    "IS_NOT": [("a", 0.80, "NOT_A"), ("GPT", 0.10, "DONE"), ("AI", 0.10, "DONE")],
    "NOT_A": [("test", 0.70, "DONE"), ("model", 0.15, "DONE"), ("dog", 0.15, "DONE")],
    "KIND": [
        ("model", 0.45, "DONE"),
        ("language", 0.30, "LANGUAGE"),
        ("test", 0.25, "DONE"),
    ],
    "LANGUAGE": [("model", 0.85, "DONE"), (EOS, 0.15, "END")],
    # after "the" or "a" at the start of a sentence: a flat distribution over ten words
    "SUBJECT": [
        ("dog", 0.12, "ANIMAL"),
        ("cat", 0.12, "ANIMAL"),
        ("robot", 0.12, "MACHINE"),
        ("model", 0.12, "MACHINE"),
        ("bird", 0.10, "ANIMAL"),
        ("computer", 0.10, "MACHINE"),
        ("small", 0.08, "SUBJECT_ADJ"),
        ("big", 0.08, "SUBJECT_ADJ"),
        ("old", 0.08, "SUBJECT_ADJ"),
        ("new", 0.08, "SUBJECT_ADJ"),
    ],
    "SUBJECT_ADJ": [
        ("dog", 0.20, "ANIMAL"),
        ("cat", 0.20, "ANIMAL"),
        ("robot", 0.20, "MACHINE"),
        ("bird", 0.15, "ANIMAL"),
        ("model", 0.15, "MACHINE"),
        ("computer", 0.10, "MACHINE"),
    ],
    # the greedy trap: "is" is the likeliest word, but every sentence through it is
    # unlikely
    "ANIMAL": [
        ("is", 0.40, "ANIMAL_IS"),
        ("runs", 0.30, "RUNS"),
        ("sleeps", 0.15, "DONE"),
        ("likes", 0.15, "LIKES"),
    ],
    "ANIMAL_IS": [
        ("happy", 0.16, "ADJ_END"),
        ("small", 0.14, "ADJ_END"),
        ("big", 0.13, "ADJ_END"),
        ("old", 0.12, "ADJ_END"),
        ("quiet", 0.12, "ADJ_END"),
        ("good", 0.11, "ADJ_END"),
        ("very", 0.11, "VERY"),
        ("new", 0.11, "ADJ_END"),
    ],
    "VERY": [
        ("happy", 0.30, "ADJ_END"),
        ("small", 0.25, "ADJ_END"),
        ("big", 0.25, "ADJ_END"),
        ("old", 0.20, "ADJ_END"),
    ],
    "ADJ_END": [(EOS, 0.85, "END"), ("and", 0.15, "AND_ADJ")],
    "AND_ADJ": [
        ("happy", 0.30, "DONE"),
        ("small", 0.25, "DONE"),
        ("quiet", 0.25, "DONE"),
        ("old", 0.20, "DONE"),
    ],
    "RUNS": [(EOS, 0.80, "END"), ("fast", 0.20, "DONE")],
    "LIKES": [("the", 0.60, "OBJECT"), ("a", 0.40, "OBJECT")],
    "OBJECT": [
        ("cat", 0.20, "DONE"),
        ("dog", 0.20, "DONE"),
        ("bird", 0.15, "DONE"),
        ("book", 0.15, "DONE"),
        ("story", 0.15, "DONE"),
        ("robot", 0.15, "DONE"),
    ],
    "MACHINE": [
        ("writes", 0.30, "WRITES"),
        ("learns", 0.25, "LEARNS"),
        ("is", 0.25, "MACHINE_IS"),
        ("reads", 0.20, "READS"),
    ],
    "MACHINE_IS": [
        ("smart", 0.35, "ADJ_END"),
        ("new", 0.25, "ADJ_END"),
        ("good", 0.20, "ADJ_END"),
        ("a", 0.20, "IS_A"),
    ],
    "WRITES": [("a", 0.70, "TEXT"), ("the", 0.30, "TEXT")],
    "READS": [("the", 0.60, "TEXT"), ("a", 0.40, "TEXT")],
    "TEXT": [
        ("story", 0.35, "DONE"),
        ("poem", 0.25, "DONE"),
        ("book", 0.25, "DONE"),
        ("test", 0.15, "DONE"),
    ],
    "LEARNS": [("language", 0.40, "DONE"), ("fast", 0.35, "DONE"), (EOS, 0.25, "END")],
    "DONE": [(EOS, 1.00, "END")],
}

# Prompts (without "<s>") for the chapters: what the next-word distribution looks like
# there.
EXAMPLE_CONTEXTS = {
    # the lesson's prompt: a, the, GPT, AI, not, good, new
    "lesson": "hello world this is",
    "peaked": "hello",  # world 0.90: nearly certain
    "flat": "the",  # ten words, none above 0.12
    "medium": "the robot",  # writes .30, learns .25, is .25, reads .20
    "greedy_trap": "the dog",  # is .40 leads nowhere likely; runs .30 ends well
}

START, END = "START", "END"
