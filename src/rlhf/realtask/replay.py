"""General questions for SFT replay: the base model's own answers to them, mixed into the
demonstrations, keep SFT from overwriting what the model already knows (InstructGPT mixes
pretraining data into its updates for the same reason).

``QUESTIONS`` are written for this project, of many kinds: facts, arithmetic, definitions, how-to
and short explanations, each with the words a right answer names (as in ``general.QUESTIONS``: one
of them suffices, whole words, case-insensitive). None is one of the evaluation's general
questions (``general.QUESTIONS``) or asks the same thing: no answer word is shared with them, and
no question names an evaluation answer (``tests/realtask/test_replay.py`` checks both), so replay
cannot teach the evaluation its answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlhf.realtask import general
from rlhf.realtask.demonstrations import LOOPING, trim
from rlhf.realtask.gold import opens_with_refusal, repetition_penalty
from rlhf.realtask.prompts import chat

QUESTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # capitals and geography
    ("What is the capital of Australia?", ("canberra",)),
    ("What is the capital of Portugal?", ("lisbon",)),
    ("What is the capital of Greece?", ("athens",)),
    ("What is the capital of Norway?", ("oslo",)),
    ("What is the capital of Sweden?", ("stockholm",)),
    ("What is the capital of Ireland?", ("dublin",)),
    ("What is the capital of Austria?", ("vienna",)),
    ("What is the capital of Kenya?", ("nairobi",)),
    ("What is the capital of Argentina?", ("buenos aires",)),
    ("What is the capital of Thailand?", ("bangkok",)),
    ("What is the capital of India?", ("new delhi", "delhi")),
    ("What is the capital of South Korea?", ("seoul",)),
    ("What is the capital of Mexico?", ("mexico city",)),
    ("What is the capital of Poland?", ("warsaw",)),
    ("What is the capital of the Netherlands?", ("amsterdam",)),
    ("What is the largest country in South America?", ("brazil",)),
    ("What is the largest desert in the world?", ("antarctica", "antarctic", "sahara")),
    ("What is the longest river in South America?", ("amazon",)),
    ("Which ocean lies between Europe and North America?", ("atlantic",)),
    ("Which country has the largest population in the world?", ("india", "china")),
    ("On which continent is Kenya?", ("africa",)),
    ("Which city is known as the Big Apple?", ("new york",)),
    ("What language is mainly spoken in Mexico?", ("spanish",)),
    ("What language is spoken in Austria?", ("german",)),
    ("What is the smallest country in the world?", ("vatican",)),
    # science and nature
    ("What is the chemical symbol for gold?", ("au",)),
    ("What is the chemical symbol for sodium?", ("na",)),
    ("What gas do humans need to breathe to live?", ("oxygen",)),
    ("What is the most common gas in Earth's atmosphere?", ("nitrogen",)),
    ("Which planet is the smallest in our solar system?", ("mercury",)),
    ("Which planet has the most famous rings?", ("saturn",)),
    ("What force keeps us on the ground?", ("gravity",)),
    ("What is the center of an atom called?", ("nucleus",)),
    ("What part of a plant makes seeds?", ("flower", "flowers", "fruit")),
    ("How many bones are in the adult human body?", ("206",)),
    ("What do caterpillars turn into?", ("butterfly", "butterflies", "moth", "moths")),
    ("What is the largest bird in the world?", ("ostrich",)),
    ("What is the fastest land animal?", ("cheetah",)),
    ("What animal is known as the king of the jungle?", ("lion",)),
    ("What organ do humans use to breathe?", ("lungs", "lung")),
    ("Which organ in the human body filters the blood to make urine?", ("kidney", "kidneys")),
    ("What is the largest organ of the human body?", ("skin",)),
    ("What do you call an animal that eats only plants?", ("herbivore",)),
    ("What is the speed of light, roughly, in kilometers per second?", ("300,000", "299,792", "300000")),
    ("What is the Moon's pull on the oceans responsible for?", ("tides", "tide")),
    ("What metal is liquid at room temperature?", ("mercury",)),
    ("What kind of animal is a dolphin?", ("mammal",)),
    ("What does a thermometer measure?", ("temperature",)),
    ("What is the study of living things called?", ("biology",)),
    ("What do you call a baby kangaroo?", ("joey",)),
    # arithmetic and numbers
    ("What is 6 times 9?", ("54", "fifty-four")),
    ("What is 12 plus 15?", ("27", "twenty-seven")),
    ("What is 50 minus 18?", ("32", "thirty-two")),
    ("What is 81 divided by 9?", ("9", "nine")),
    ("What is 5 times 5?", ("25", "twenty-five")),
    ("What is 9 plus 6?", ("15", "fifteen")),
    ("What is 20 divided by 4?", ("5", "five")),
    ("What is half of 60?", ("30", "thirty")),
    ("What is 11 times 11?", ("121",)),
    ("What is the square root of 81?", ("9", "nine")),
    ("How many minutes are in an hour?", ("60", "sixty")),
    ("How many hours are in a day?", ("24", "twenty-four")),
    ("How many months are in a year?", ("12", "twelve")),
    ("How many sides does a hexagon have?", ("6", "six")),
    ("How many sides does a pentagon have?", ("5", "five")),
    ("How many players are on a soccer team on the field?", ("11", "eleven")),
    ("How many seconds are in a minute?", ("60", "sixty")),
    ("What is 15 percent of 200?", ("30", "thirty")),
    ("Is 17 a prime number?", ("yes", "prime")),
    ("How many weeks are in a year?", ("52", "fifty-two")),
    ("How many grams are in a kilogram?", ("1,000", "1000", "thousand")),
    # people, history and culture
    ("Who wrote Pride and Prejudice?", ("austen",)),
    ("Who wrote the Odyssey?", ("homer",)),
    ("Who painted The Starry Night?", ("van gogh", "gogh")),
    ("Who discovered penicillin?", ("fleming",)),
    ("Who proposed the theory of evolution by natural selection?", ("darwin",)),
    ("Who was the first person to walk on the Moon?", ("armstrong",)),
    ("Who invented the telephone?", ("bell",)),
    ("Who composed the Fifth Symphony that opens with four famous notes?", ("beethoven",)),
    ("In which year did World War II end?", ("1945",)),
    ("In which year did the Titanic sink?", ("1912",)),
    ("Which ancient civilization built Machu Picchu?", ("inca", "incas")),
    ("Who was the first woman to win a Nobel Prize?", ("curie",)),
    ("Which empire built the Colosseum?", ("roman", "romans")),
    ("Who wrote Harry Potter?", ("rowling",)),
    ("What instrument has 88 keys?", ("piano",)),
    ("How many strings does a standard guitar have?", ("6", "six")),
    ("What sport is played at Wimbledon?", ("tennis",)),
    ("What is the national animal of Australia?", ("kangaroo",)),
    # definitions
    ("What is a noun?", ("person", "place", "thing")),
    ("What is a verb?", ("action",)),
    ("What does a dictionary contain?", ("words", "definitions")),
    ("What is a synonym?", ("same", "similar")),
    ("What is an antonym?", ("opposite",)),
    ("What is a democracy?", ("people", "vote", "citizens")),
    ("What is inflation in economics?", ("prices", "price")),
    ("What is a budget?", ("money", "spending", "income")),
    ("What is a habitat?", ("home", "environment", "live", "lives")),
    ("What is an ecosystem?", ("organisms", "living", "environment")),
    ("What is an amphibian?", ("water", "land", "frog", "frogs")),
    ("What is a verb tense?", ("time",)),
    ("What is a prime number?", ("divisible", "factors", "itself")),
    ("What is gravity?", ("force", "attraction", "mass")),
    ("What is an atom?", ("matter", "particle", "smallest", "unit")),
    ("What is a metaphor?", ("comparison", "compares", "figure of speech")),
    ("What is a volcano?", ("magma", "lava", "eruption", "erupt")),
    ("What is a computer program?", ("instructions", "code")),
    ("What is a galaxy?", ("stars",)),
    # how-to
    ("How do I boil an egg?", ("water", "boil", "boiling")),
    ("How do I make a cup of tea?", ("water", "tea bag", "leaves", "steep")),
    ("How can I improve my handwriting?", ("practice", "pen", "letters")),
    ("How do I plant a tomato seedling?", ("soil", "hole", "water")),
    ("How can I save money on groceries?", ("list", "budget", "sales", "coupons")),
    ("How do I tie a shoelace?", ("loop", "loops", "knot")),
    ("How do I write a thank-you note?", ("thank", "thanks", "gratitude")),
    ("How do I change a flat bicycle tire?", ("tube", "tire", "pump")),
    ("How can I fall asleep faster?", ("bed", "routine", "screens", "relax")),
    ("How do I clean a cast iron pan?", ("water", "oil", "scrub", "soap")),
    ("How do I start learning to play the guitar?", ("chords", "practice", "lessons")),
    ("How do I make a paper airplane?", ("fold", "paper")),
    ("How can I remember new vocabulary words?", ("flashcards", "practice", "review", "repeat")),
    ("How do I wash a wool sweater?", ("hand", "gentle", "lukewarm", "water")),
    ("How do I make pancakes?", ("flour", "eggs", "milk", "batter")),
    ("How can I keep a houseplant healthy?", ("water", "light", "soil")),
    ("How do I write a good email subject line?", ("short", "clear", "specific")),
    ("How do I find the area of a rectangle?", ("length", "width", "multiply")),
    ("How do I prepare for a job interview?", ("research", "practice", "questions")),
    # short explanations
    ("Why do we have seasons on Earth?", ("tilt", "tilted", "axis")),
    ("Why do leaves change color in autumn?", ("chlorophyll",)),
    ("Why does ice float on water?", ("dense", "density")),
    ("Why do we see lightning before we hear thunder?", ("faster", "speed")),
    ("Why do people need to drink water?", ("body", "hydrated", "hydration")),
    ("Why does the Moon change shape during the month?", ("phases", "phase", "sunlight", "light")),
    ("Why do birds fly south for the winter?", ("food", "warmer", "warm")),
    ("Why is exercise good for you?", ("health", "healthy", "muscles", "body")),
    ("Why do we brush our teeth?", ("plaque", "cavities", "bacteria", "decay")),
    ("Why does metal feel colder than wood?", ("heat", "conducts", "conductor")),
    ("Why do onions make people cry?", ("eyes", "sulfur", "gas", "chemical")),
    ("Why do bread doughs rise?", ("yeast",)),
    ("How does a rainbow form?", ("light", "water", "droplets", "refraction")),
    ("How do vaccines work?", ("immune", "antibodies")),
    ("How does a refrigerator keep food cool?", ("heat", "refrigerant", "compressor")),
    ("Why do cats purr?", ("content", "happy", "communicate", "relaxed")),
    ("How do fish breathe underwater?", ("gills",)),
    ("What causes wind?", ("air", "pressure", "temperature")),
    ("Why is the ocean salty?", ("salt", "minerals", "rocks", "rivers")),
    ("How does recycling help the environment?", ("waste", "resources", "landfills", "landfill")),
)
"""(question, accepted answer words)"""


EVALUATION_WORDS: tuple[str, ...] = tuple(
    sorted({a for _, answers in general.QUESTIONS if not any(a.isdigit() for a in answers) for a in answers})
)
"""the evaluation's answers that are not numbers ("seven" and "7" are left to arithmetic)"""


def names_evaluation_answer(text: str) -> bool:
    """Whether ``text`` names a word answer of an evaluation question ("Paris", "Jupiter"; numbers
    and number words are too common to count): a replay demonstration that does is left out."""
    return general.right(EVALUATION_WORDS, text)


def build(
    questions: Sequence[tuple[str, tuple[str, ...]]], base_answers: dict[str, str], max_words: int
) -> tuple[list[dict], int]:
    """SFT records ``{"prompt": [user message], "completion"}``: the base model's answer to each
    question (``base_answers[question]``) cut to whole sentences, and how many were left out:
    a refusal, a wrong answer (no accepted word), a loop, or one naming an evaluation answer."""
    records, left_out = [], 0
    for question, answers in questions:
        completion = trim(base_answers[question], max_words)
        if (
            opens_with_refusal(completion)
            or not general.right(answers, completion)
            or repetition_penalty(completion) > LOOPING
            or names_evaluation_answer(completion)
        ):
            left_out += 1
            continue
        records.append({"prompt": chat(question), "completion": completion})
    return records, left_out
