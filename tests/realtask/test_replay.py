"""SFT replay questions: disjoint from the evaluation's general questions, by question and by
answer, and only the base model's right, clean answers become demonstrations."""

from rlhf.realtask import general, replay
from rlhf.realtask.gold import words

# words that say what kind of question it is, not what it is about
_FORM = frozenset(
    "what which who whom how why is are was were do does did the a an of in on to for by and or "
    "there many much called known".split()
)


def _content(question: str) -> set[str]:
    return {w for w in words(question) if w not in _FORM}


def test_a_hundred_or_more_questions_of_many_kinds_each_once():
    questions = [q for q, _ in replay.QUESTIONS]
    assert 100 <= len(questions) <= 200
    assert len({q.lower() for q in questions}) == len(questions)
    openings = {q.split()[0] for q in questions}
    assert {"What", "How", "Why", "Who"} <= openings
    assert all(answers for _, answers in replay.QUESTIONS)


def test_no_replay_question_is_or_paraphrases_an_evaluation_question():
    eval_questions = [q for q, _ in general.QUESTIONS]
    eval_answers = {a for _, answers in general.QUESTIONS for a in answers}
    for question, answers in replay.QUESTIONS:
        assert question.lower() not in {q.lower() for q in eval_questions}, question
        # by answer: no accepted answer is also an evaluation answer ...
        assert not set(answers) & eval_answers, question
        # ... no replay question names an evaluation answer ("Which country is Paris the capital of?")
        assert not replay.names_evaluation_answer(question), question
        # ... and none asks about the same things in other form words
        for q in eval_questions:
            assert not _content(question) <= _content(q), (question, q)
            assert not _content(q) <= _content(question), (question, q)


def test_replay_keeps_right_clean_base_answers_trimmed_and_counts_the_rest():
    questions = [
        ("What is the capital of Australia?", ("canberra",)),
        ("What is 6 times 9?", ("54",)),
        ("How do I boil an egg?", ("water", "boil")),
        ("Why do we have seasons on Earth?", ("tilt", "axis")),
        ("What is a galaxy?", ("stars",)),
    ]
    answers = {
        "What is the capital of Australia?": "The capital of Australia is Canberra. It was chosen as a comp",
        "What is 6 times 9?": "6 times 9 is 42.",  # wrong
        "How do I boil an egg?": "I'm sorry, but I can't help with that. Boil water.",  # a refusal
        "Why do we have seasons on Earth?": "Earth's axis is tilted toward the Sun in summer.",  # names "sun"
        "What is a galaxy?": "A galaxy is stars and stars and stars and stars and stars and stars.",  # loops
    }
    records, left_out = replay.build(questions, answers, max_words=20)
    assert left_out == 4
    assert records == [
        {
            "prompt": [{"role": "user", "content": "What is the capital of Australia?"}],
            "completion": "The capital of Australia is Canberra.",
        }
    ]


def test_the_dev_general_questions_are_neither_evaluation_nor_replay_questions():
    replay_answers = {a for _, answers in replay.QUESTIONS for a in answers}
    others = [q for q, _ in general.QUESTIONS + replay.QUESTIONS]
    assert len(general.DEV_QUESTIONS) >= 20
    for question, answers in general.DEV_QUESTIONS:
        assert question.lower() not in {q.lower() for q in others}, question
        assert not set(answers) & replay_answers, question  # replay cannot teach a dev answer
        for q in others:
            assert not _content(question) <= _content(q), (question, q)
            assert not _content(q) <= _content(question), (question, q)
